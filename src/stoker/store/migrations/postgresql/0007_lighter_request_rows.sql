-- Every request row is written three times (queued, leased, finished) and no update of it is
-- HOT (its status is indexed), so each index on it is paid three times per request. These
-- guard nothing the write paths do not already ensure, so they go:
-- * (job_id, custom_id) and (job_id, idx) unique: a job's requests are inserted by one
--   statement, numbered by position, after the store has refused repeated custom_ids; reads
--   of a job use (job_id, status) and sort its rows by idx.
-- * The foreign keys from requests to jobs and from results to requests: jobs and requests are
--   never deleted, a job's requests are inserted in the job's own transaction, and a result is
--   inserted by joining the request it answers; each check also locked the referenced row.
ALTER TABLE requests DROP CONSTRAINT requests_job_id_custom_id_key;
ALTER TABLE requests DROP CONSTRAINT requests_job_id_idx_key;
ALTER TABLE requests DROP CONSTRAINT requests_job_id_fkey;
ALTER TABLE results DROP CONSTRAINT results_request_id_fkey;
