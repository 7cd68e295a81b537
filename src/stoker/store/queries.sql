-- Named queries of the store. Parameters are :named; dialect gaps live in the implementations.

-- name: insert_job
INSERT INTO jobs (id, team, tier, model, created_at, request_count, metadata, idempotency_key,
                  concurrency_group, fingerprint, expires_at)
VALUES (:id, :team, :tier, :model, :created_at, :request_count, :metadata, :idempotency_key,
        :concurrency_group, :fingerprint, :expires_at);

-- name: insert_requests
-- A page of a job's requests in one statement, from a JSON array of objects holding what
-- differs row to row (a row answered from cache has "cached": 1); the rest are parameters.
INSERT INTO requests (id, job_id, idx, custom_id, model, tier, team, priority, endpoint, body,
                      status, attempts, max_attempts, enqueued_at, finished_at, cache_key,
                      revision)
SELECT json_extract(value, '$.id'), :job_id, json_extract(value, '$.idx'),
       json_extract(value, '$.custom_id'), :model, :tier, :team, :priority,
       json_extract(value, '$.endpoint'), json_extract(value, '$.body'),
       CASE WHEN json_extract(value, '$.cached') = 1 THEN 'succeeded'
            WHEN :cancelled THEN 'cancelled' ELSE 'queued' END, 0,
       :max_attempts, :now,
       CASE WHEN json_extract(value, '$.cached') = 1 OR :cancelled THEN :now END,
       json_extract(value, '$.cache_key'), :revision
FROM json_each(:rows) ORDER BY key;

-- name: get_job
SELECT id, team, tier, model, created_at, cancelled_at, finished_at, metadata, idempotency_key,
       concurrency_group, superseded_by, expires_at
FROM jobs WHERE id = :id;

-- name: list_jobs
SELECT id, team, tier, model, created_at, cancelled_at, finished_at, metadata, idempotency_key,
       concurrency_group, superseded_by, expires_at
FROM jobs WHERE team = COALESCE(:team, team) ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: job_by_idempotency_key
SELECT id, fingerprint FROM jobs WHERE team = :team AND idempotency_key = :key;

-- name: open_jobs_in_group
SELECT id FROM jobs
WHERE team = :team AND concurrency_group = :group AND finished_at IS NULL
  AND cancelled_at IS NULL;

-- name: supersede_job
UPDATE jobs SET cancelled_at = :now, superseded_by = :by
WHERE id = :id AND cancelled_at IS NULL AND finished_at IS NULL;

-- name: job_counts
-- (Requests still staged, of a big job being moved in, count as queued.)
SELECT status, COUNT(*) AS n FROM requests WHERE job_id = :job_id GROUP BY status
UNION ALL
SELECT 'queued', SUM(request_count) FROM staged_requests WHERE job_id = :job_id
HAVING COUNT(*) > 0;

-- name: job_open_requests
SELECT (SELECT COUNT(*) FROM requests WHERE job_id = :job_id AND status IN ('queued', 'leased'))
     + (SELECT COUNT(*) FROM staged_requests WHERE job_id = :job_id);

-- name: mark_job_finished
UPDATE jobs SET finished_at = :now WHERE id = :job_id AND finished_at IS NULL;

-- name: cancel_job
UPDATE jobs SET cancelled_at = :now WHERE id = :job_id AND cancelled_at IS NULL AND finished_at IS NULL;

-- name: cancel_queued_requests
UPDATE requests SET status = 'cancelled', finished_at = :now
WHERE job_id = :job_id AND status = 'queued';

-- name: job_results
SELECT r.id, r.idx, r.custom_id, r.endpoint, r.model, r.status, r.last_error, r.attempts,
       s.text, s.finish_reason, s.prompt_tokens, s.completion_tokens, s.error, s.created_at,
       r.finished_at, COALESCE(s.cached, 0), s.stop_sequence, s.logprobs,
       s.tool_calls
FROM requests r LEFT JOIN results s ON s.request_id = r.id
WHERE r.job_id = :job_id ORDER BY r.idx;

-- name: job_results_page
-- A page of job_results after the index :after, the index last (SQLite, whose (job_id, idx)
-- key serves it; PostgreSQL streams job_results through a server-side cursor instead).
SELECT r.id, r.idx, r.custom_id, r.endpoint, r.model, r.status, r.last_error, r.attempts,
       s.text, s.finish_reason, s.prompt_tokens, s.completion_tokens, s.error, s.created_at,
       r.finished_at, COALESCE(s.cached, 0), s.stop_sequence, s.logprobs,
       s.tool_calls, r.idx
FROM requests r LEFT JOIN results s ON s.request_id = r.id
WHERE r.job_id = :job_id AND r.idx > :after ORDER BY r.idx LIMIT :page;

-- name: queue_groups
SELECT tier, team, queued, head_enqueued_at FROM queue_groups
WHERE model = :model AND queued > 0;

-- name: queue_depth_by_model
SELECT model, tier, SUM(queued) FROM queue_groups GROUP BY model, tier HAVING SUM(queued) > 0;

-- name: team_queued
SELECT COALESCE(SUM(queued), 0) FROM queue_groups WHERE team = :team;

-- name: insert_lease
-- After its requests were taken: the lease keeps their ids, to hold its report to them.
INSERT INTO leases (id, runner_id, model, created_at, expires_at, request_ids)
VALUES (:id, :runner_id, :model, :now, :expires_at,
        (SELECT json_group_array(id) FROM requests WHERE lease_id = :id AND status = 'leased'));

-- name: lease_group
-- (A request pinned to a revision goes only to a runner of that revision.)
UPDATE requests SET status = 'leased', lease_id = :lease_id, attempts = attempts + 1
WHERE id IN (SELECT id FROM requests
             WHERE model = :model AND tier = :tier AND team = :team AND status = 'queued'
               AND (revision IS NULL
                    OR revision = (SELECT revision FROM runners WHERE id = :runner_id))
             ORDER BY enqueued_at, seq LIMIT :count);

-- name: runner_may_lease
SELECT 1 FROM runners WHERE id = :id AND state NOT IN ('draining', 'stopped');

-- name: leased_requests
SELECT id, job_id, idx, custom_id, model, tier, endpoint, body, status, attempts, max_attempts,
       enqueued_at, last_error
FROM requests WHERE lease_id = :lease_id AND status = 'leased' ORDER BY priority DESC, enqueued_at, seq;

-- name: get_lease
SELECT id, runner_id, model, created_at, expires_at, released_at FROM leases WHERE id = :id;

-- name: lease_for_report
-- The lease a report names, held until the report is recorded (PostgreSQL locks the row, so
-- two copies of one report are recorded one after the other, and the second as a repeat).
SELECT id, runner_id, model, released_at, request_ids, reported_at FROM leases WHERE id = :id;

-- name: lease_running
-- How many of a lease's requests are still running (a finished one leaves its lease).
SELECT COUNT(*) FROM requests WHERE lease_id = :id AND status = 'leased';

-- name: batch_exists
SELECT 1 FROM batches WHERE id = :id;

-- name: mark_lease_reported
UPDATE leases SET reported_at = :now WHERE id = :id;

-- name: renew_lease
UPDATE leases SET expires_at = :expires_at
WHERE id = :id AND runner_id = :runner_id AND released_at IS NULL AND expires_at > :now;

-- name: release_lease
UPDATE leases SET released_at = :now, outcome = :outcome WHERE id = :id AND released_at IS NULL;

-- name: expired_leases
SELECT id FROM leases WHERE released_at IS NULL AND expires_at <= :now;

-- name: put_back_leased
-- What a lease still holds once its report is in (or it expired), in one statement: a
-- cancelled (or superseded) job's requests end cancelled, never run and billed again; the
-- rest go back to the queue with their error, or fail once out of attempts. :errors maps a
-- request id to the error its runner gave; the others get :error. (One statement, because
-- every UPDATE of requests fires the queue summary's trigger.)
UPDATE requests SET
    status = CASE
        WHEN EXISTS (SELECT 1 FROM jobs j WHERE j.id = requests.job_id
                     AND j.cancelled_at IS NOT NULL) THEN 'cancelled'
        WHEN attempts >= max_attempts THEN 'failed'
        ELSE 'queued' END,
    last_error = CASE
        WHEN EXISTS (SELECT 1 FROM jobs j WHERE j.id = requests.job_id
                     AND j.cancelled_at IS NOT NULL) THEN last_error
        ELSE COALESCE(:errors ->> id, :error) END,
    finished_at = CASE
        WHEN attempts >= max_attempts OR EXISTS (SELECT 1 FROM jobs j
            WHERE j.id = requests.job_id AND j.cancelled_at IS NOT NULL) THEN :now
        ELSE finished_at END,
    lease_id = NULL
WHERE lease_id = :lease_id AND status = 'leased'
RETURNING status;

-- name: jobs_of_lease
SELECT DISTINCT job_id FROM requests WHERE lease_id = :lease_id;

-- name: insert_results
-- A batch's results, from a JSON array of outcomes; a request with a result keeps it.
INSERT INTO results (request_id, job_id, text, finish_reason, prompt_tokens, completion_tokens,
                     error, runner_id, batch_id, created_at, stop_sequence, logprobs,
                     tool_calls)
SELECT r.id, r.job_id, json_extract(o.value, '$.text'), json_extract(o.value, '$.finish_reason'),
       json_extract(o.value, '$.prompt_tokens'), json_extract(o.value, '$.completion_tokens'),
       json_extract(o.value, '$.error'), :runner_id, :batch_id, :now,
       json_extract(o.value, '$.stop_sequence'), json_extract(o.value, '$.logprobs'),
       json_extract(o.value, '$.tool_calls')
FROM json_each(:outcomes) o JOIN requests r ON r.id = json_extract(o.value, '$.request_id')
WHERE r.status IN ('queued', 'leased')  -- a finished, failed or cancelled request takes none
ON CONFLICT (request_id) DO NOTHING;

-- name: insert_cached_result
INSERT INTO results (request_id, job_id, text, finish_reason, prompt_tokens, completion_tokens,
                     cached, created_at, stop_sequence, logprobs, tool_calls)
VALUES (:request_id, :job_id, :text, :finish_reason, :prompt_tokens, :completion_tokens, 1, :now,
        :stop_sequence, :logprobs, :tool_calls);

-- name: cache_lookup
-- The cached answers of a page of fingerprints (a JSON array).
SELECT key, text, finish_reason, prompt_tokens, completion_tokens, stop_sequence, logprobs,
       tool_calls
FROM result_cache WHERE key IN (SELECT value FROM json_each(:keys));

-- name: cache_store
INSERT INTO result_cache (key, text, finish_reason, prompt_tokens, completion_tokens, created_at,
                          stop_sequence, logprobs, tool_calls)
SELECT r.cache_key, COALESCE(json_extract(o.value, '$.text'), ''),
       COALESCE(json_extract(o.value, '$.finish_reason'), 'stop'),
       json_extract(o.value, '$.prompt_tokens'), json_extract(o.value, '$.completion_tokens'),
       :now, json_extract(o.value, '$.stop_sequence'), json_extract(o.value, '$.logprobs'),
       json_extract(o.value, '$.tool_calls')
FROM json_each(:outcomes) o JOIN requests r ON r.id = json_extract(o.value, '$.request_id')
WHERE r.cache_key IS NOT NULL AND json_extract(o.value, '$.error') IS NULL
ON CONFLICT (key) DO NOTHING;

-- name: team_tokens_on
SELECT COALESCE(SUM(completion_tokens), 0) FROM team_usage WHERE team = :team AND day = :day;

-- name: lock_team_admission
-- Admission decisions of one team are made one at a time. SQLite has one writer at a time
-- already; PostgreSQL takes a lock per team for the transaction (queryable or not, a team's
-- first submission has no row to lock).
SELECT 0;

-- name: read_admission
-- A team's admission state, read to report it (get_admission locks it to decide).
SELECT bucket, bucket_at, window_start, window_submissions, tripped_until
FROM team_admission WHERE team = :team;

-- name: get_admission
SELECT bucket, bucket_at, window_start, window_submissions, tripped_until
FROM team_admission WHERE team = :team;

-- name: put_admission
INSERT INTO team_admission (team, bucket, bucket_at, window_start, window_submissions,
                            tripped_until)
VALUES (:team, :bucket, :bucket_at, :window_start, :window_submissions, :tripped_until)
ON CONFLICT (team) DO UPDATE SET
    bucket = excluded.bucket, bucket_at = excluded.bucket_at,
    window_start = excluded.window_start, window_submissions = excluded.window_submissions,
    tripped_until = excluded.tripped_until;

-- name: finish_requests
-- First results finish their requests; a repeat finds its request finished already, and a
-- terminal request (failed, cancelled) stays as it is.
UPDATE requests SET
    status = CASE WHEN json_extract(o.value, '$.error') IS NULL THEN 'succeeded'
                  ELSE 'failed' END,
    lease_id = NULL, last_error = json_extract(o.value, '$.error'), finished_at = :now
FROM json_each(:outcomes) o
WHERE requests.id = json_extract(o.value, '$.request_id')
  AND requests.status IN ('queued', 'leased');

-- name: insert_batch
INSERT INTO batches (id, runner_id, model, lease_id, started_at, ended_at, request_ids,
                     request_count, prompt_tokens, completion_tokens)
VALUES (:id, :runner_id, :model, :lease_id, :started_at, :ended_at, :request_ids,
        :request_count, :prompt_tokens, :completion_tokens);

-- name: list_batches
SELECT id, runner_id, model, lease_id, started_at, ended_at, request_ids, prompt_tokens,
       completion_tokens
FROM batches ORDER BY started_at, id;

-- name: job_batches
-- (A command's stopped runs count: they ran the job, and hold no result.)
SELECT b.id, b.runner_id, b.model, b.lease_id, b.started_at, b.ended_at, b.request_ids,
       b.prompt_tokens, b.completion_tokens, COUNT(*) AS mine
FROM (SELECT batch_id, job_id FROM results WHERE job_id = :job_id
      UNION ALL
      SELECT batch_id, job_id FROM checkpointed_runs WHERE job_id = :job_id) s
JOIN batches b ON b.id = s.batch_id
GROUP BY b.id, b.runner_id, b.model, b.lease_id, b.started_at, b.ended_at, b.request_ids,
         b.prompt_tokens, b.completion_tokens
ORDER BY b.started_at, b.id;

-- name: bump_counter
INSERT INTO counters (name, value) VALUES (:name, :by)
ON CONFLICT (name) DO UPDATE SET value = counters.value + :by;

-- name: get_counter
SELECT value FROM counters WHERE name = :name;

-- name: insert_runner
INSERT INTO runners (id, name, model, state, pid, host, max_batch_size, max_wait_ms,
                     registered_at, last_heartbeat_at, state_since, revision)
VALUES (:id, :name, :model, 'starting', :pid, :host, :max_batch_size, :max_wait_ms,
        :now, :now, :now, :revision);

-- name: get_runner
SELECT id, name, model, state, pid, host, max_batch_size, max_wait_ms, registered_at,
       last_heartbeat_at, state_since,
       (SELECT COUNT(*) FROM requests q JOIN leases l ON q.lease_id = l.id
        WHERE l.runner_id = runners.id AND l.released_at IS NULL
          AND q.status = 'leased') AS leased, revision
FROM runners WHERE id = :id;

-- name: list_runners
SELECT id, name, model, state, pid, host, max_batch_size, max_wait_ms, registered_at,
       last_heartbeat_at, state_since,
       (SELECT COUNT(*) FROM requests q JOIN leases l ON q.lease_id = l.id
        WHERE l.runner_id = runners.id AND l.released_at IS NULL
          AND q.status = 'leased') AS leased, revision
FROM runners WHERE state != 'stopped' OR :include_stopped ORDER BY registered_at, id;

-- name: set_runner_state
UPDATE runners SET state = :state, state_since = :now, last_heartbeat_at = :now WHERE id = :id;

-- name: close_interval
UPDATE runner_intervals SET ended_at = :now WHERE runner_id = :runner_id AND ended_at IS NULL;

-- name: open_interval
INSERT INTO runner_intervals (runner_id, state, started_at) VALUES (:runner_id, :state, :now);

-- name: runner_intervals
SELECT runner_id, state, started_at, ended_at FROM runner_intervals
WHERE runner_id = :runner_id ORDER BY started_at, id;

-- name: touch_runner
UPDATE runners SET last_heartbeat_at = :now WHERE id = :id
RETURNING id, name, model, state, pid, host, max_batch_size, max_wait_ms, registered_at,
          last_heartbeat_at, state_since, 0, revision;

-- name: lost_runners
SELECT id FROM runners WHERE state != 'stopped' AND last_heartbeat_at <= :cutoff;

-- name: open_leases_of_runner
SELECT id FROM leases WHERE runner_id = :runner_id AND released_at IS NULL;

-- name: finish_jobs_of_requests
-- Every job of these requests (a JSON array of ids) with no queued or leased request left.
UPDATE jobs SET finished_at = :now
WHERE id IN (SELECT job_id FROM requests WHERE id IN (SELECT value FROM json_each(:ids)))
  AND finished_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM requests r
                  WHERE r.job_id = jobs.id AND r.status IN ('queued', 'leased'))
  AND NOT EXISTS (SELECT 1 FROM staged_requests s WHERE s.job_id = jobs.id);

-- name: add_batch_usage
INSERT INTO team_usage (team, day, shard, completion_tokens)
SELECT r.team, :day, 0, SUM(s.completion_tokens)
FROM results s JOIN requests r ON r.id = s.request_id
WHERE s.batch_id = :batch_id
GROUP BY r.team
ON CONFLICT (team, day, shard) DO UPDATE
SET completion_tokens = team_usage.completion_tokens + excluded.completion_tokens;

-- name: mark_busy
UPDATE runners SET state = 'busy', state_since = :now, last_heartbeat_at = :now
WHERE id = :id AND state = 'idle';

-- name: mark_idle
UPDATE runners SET state = 'idle', state_since = :now, last_heartbeat_at = :now
WHERE id = :id AND state = 'busy'
  AND NOT EXISTS (SELECT 1 FROM leases WHERE runner_id = :id AND released_at IS NULL);

-- name: lock_runner
SELECT state FROM runners WHERE id = :id;

-- OpenAI-compatible files and batches ---------------------------------------------------------

-- name: insert_file
INSERT INTO files (id, team, purpose, filename, bytes, content, created_at)
VALUES (:id, :team, :purpose, :filename, :bytes, :content, :now);

-- name: get_file
SELECT id, team, purpose, filename, bytes, created_at FROM files
WHERE id = :id AND deleted_at IS NULL;

-- name: file_content
SELECT content FROM files WHERE id = :id AND deleted_at IS NULL;

-- name: delete_file
UPDATE files SET deleted_at = :now, content = :empty WHERE id = :id AND deleted_at IS NULL;

-- name: list_files
SELECT id, team, purpose, filename, bytes, created_at FROM files
WHERE team = :team AND deleted_at IS NULL AND purpose = COALESCE(:purpose, purpose)
  AND (created_at < :before_at OR (created_at = :before_at AND id < :before_id))
ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: insert_openai_batch
INSERT INTO openai_batches (id, team, job_id, endpoint, input_file_id, completion_window,
                            metadata, created_at, expires_at, total_lines, invalid_lines,
                            errors, failed_at)
VALUES (:id, :team, :job_id, :endpoint, :input_file_id, :completion_window, :metadata, :now,
        :expires_at, :total_lines, :invalid_lines, :errors, :failed_at);

-- name: get_openai_batch
SELECT id, team, job_id, endpoint, input_file_id, completion_window, metadata, created_at,
       expires_at, total_lines, invalid_lines, errors, failed_at, cancelling_at, expired_at
FROM openai_batches WHERE id = :id;

-- name: list_openai_batches
SELECT id, team, job_id, endpoint, input_file_id, completion_window, metadata, created_at,
       expires_at, total_lines, invalid_lines, errors, failed_at, cancelling_at, expired_at
FROM openai_batches
WHERE team = :team
  AND (created_at < :before_at OR (created_at = :before_at AND id < :before_id))
ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: mark_openai_batch_cancelling
UPDATE openai_batches SET cancelling_at = :now WHERE id = :id AND cancelling_at IS NULL;

-- name: overdue_openai_batches
SELECT b.id, b.job_id FROM openai_batches b JOIN jobs j ON j.id = b.job_id
WHERE b.expired_at IS NULL AND b.failed_at IS NULL AND b.expires_at <= :now
  AND j.finished_at IS NULL AND j.cancelled_at IS NULL;

-- name: overdue_jobs
SELECT id FROM jobs
WHERE expires_at IS NOT NULL AND expires_at <= :now AND finished_at IS NULL
  AND cancelled_at IS NULL
ORDER BY id;

-- name: mark_openai_batch_expired
UPDATE openai_batches SET expired_at = :now WHERE id = :id AND expired_at IS NULL;

-- name: job_tokens
SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
FROM results WHERE job_id = :job_id;

-- Cost accounting ------------------------------------------------------------------------------

-- name: usage_spans
SELECT i.runner_id, r.model, i.state, i.started_at, i.ended_at
FROM runner_intervals i JOIN runners r ON r.id = i.runner_id
WHERE i.started_at < :until AND (i.ended_at IS NULL OR i.ended_at > :since)
ORDER BY i.started_at, i.id;

-- name: usage_batches
SELECT id, runner_id, model, started_at, ended_at, request_count FROM batches
WHERE started_at < :until AND ended_at >= :since;

-- name: usage_results
-- What each batch ran for whom: its results, and a command's stopped runs (no tokens).
SELECT s.batch_id, s.request_id, s.job_id, s.prompt_tokens, s.completion_tokens
FROM results s JOIN batches b ON b.id = s.batch_id
WHERE b.started_at < :until AND b.ended_at >= :since
UNION ALL
SELECT c.batch_id, c.request_id, c.job_id, 0, 0
FROM checkpointed_runs c JOIN batches b ON b.id = c.batch_id
WHERE b.started_at < :until AND b.ended_at >= :since;

-- name: usage_jobs
SELECT id, team, tier, model, created_at, finished_at, request_count FROM jobs
WHERE created_at < :until AND (finished_at IS NULL OR finished_at >= :since);

-- name: fold_queue_summary
-- SQLite's triggers keep the summary exact row by row: there is nothing to fold.
SELECT 0;

-- name: fold_usage
-- SQLite has one writer at a time, so completions add to the usage row itself.
SELECT 0;

-- name: stage_page
-- A page of a big job's rows (see migration staged_requests), before the job is admitted.
INSERT INTO staged_requests (job_id, page, request_count, model, tier, team, priority,
                             max_attempts, page_rows, page_hits, staged_at, revision)
VALUES (:job_id, :page, :request_count, :model, :tier, :team, :priority, :max_attempts,
        :page_rows, :page_hits, :now, :revision);

-- name: take_staged_page
-- A staged page, taken by the one mover that deletes it (another finds it gone).
DELETE FROM staged_requests WHERE job_id = :job_id AND page = :page
RETURNING request_count, model, tier, team, priority, max_attempts, page_rows, page_hits,
          staged_at, revision;

-- name: staged_pages
SELECT page FROM staged_requests WHERE job_id = :job_id ORDER BY page;

-- name: drop_staged
DELETE FROM staged_requests WHERE job_id = :job_id;

-- name: staged_jobs
-- Jobs with staged pages: whether the job was admitted, and when its newest page was staged.
SELECT s.job_id, MAX(CASE WHEN j.id IS NULL THEN 0 ELSE 1 END), MAX(s.staged_at)
FROM staged_requests s LEFT JOIN jobs j ON j.id = s.job_id
GROUP BY s.job_id;

-- name: job_cancelled_for_move
SELECT cancelled_at IS NOT NULL FROM jobs WHERE id = :job_id;

-- name: claim_pool_controller
-- The model pool's controller lease: taken when free or expired, renewed by its holder.
INSERT INTO pool_controllers (model, holder, expires_at) VALUES (:model, :holder, :expires_at)
ON CONFLICT (model) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE pool_controllers.holder = excluded.holder OR pool_controllers.expires_at <= :now
RETURNING holder;

-- name: release_pool_controller
DELETE FROM pool_controllers WHERE model = :model AND holder = :holder;

-- name: recent_cold_starts
-- How long the model's last runners took from registering to warm (a start that never got
-- warm is no measure of a cold start).
SELECT i.ended_at - i.started_at FROM runner_intervals i JOIN runners r ON r.id = i.runner_id
WHERE r.model = :model AND i.state = 'starting' AND i.ended_at IS NOT NULL
  AND EXISTS (SELECT 1 FROM runner_intervals n WHERE n.runner_id = i.runner_id
              AND n.state = 'idle' AND n.started_at = i.ended_at)
ORDER BY i.started_at DESC LIMIT :limit;

-- name: recent_batch_totals
-- The model's last batches: generated tokens, runner-seconds busy, requests.
SELECT COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(ended_at - started_at), 0),
       COALESCE(SUM(request_count), 0)
FROM (SELECT completion_tokens, ended_at, started_at, request_count FROM batches
      WHERE model = :model ORDER BY ended_at DESC LIMIT :limit) recent;

-- name: insert_pool_decision
INSERT INTO pool_decisions (id, model, decided_at, controller, desired, started, stopped,
                            reason, signals)
VALUES (:id, :model, :decided_at, :controller, :desired, :started, :stopped, :reason,
        :signals);

-- name: recent_pool_decisions
SELECT model, decided_at, controller, desired, started, stopped, reason, signals
FROM pool_decisions WHERE model = COALESCE(:model, model)
ORDER BY decided_at DESC, id DESC LIMIT :limit;

-- name: pool_decision_counts
SELECT model, reason, COUNT(*) FROM pool_decisions GROUP BY model, reason;

-- name: start_roll
INSERT INTO model_rolls (id, model, path, revision, status, started_at)
VALUES (:id, :model, :path, :revision, 'rolling', :now);

-- name: model_rolls
-- A model's rolls, newest first.
SELECT id, model, path, revision, status, started_at, ended_at, message
FROM model_rolls WHERE model = :model ORDER BY started_at DESC, id DESC LIMIT :limit;

-- name: end_roll
UPDATE model_rolls SET status = :status, ended_at = :now, message = :message
WHERE id = :id AND status = 'rolling';

-- name: pinned_open_requests
-- A model's queued or leased requests pinned to a revision, by revision.
SELECT revision, COUNT(*) FROM requests
WHERE model = :model AND status IN ('queued', 'leased') AND revision IS NOT NULL
GROUP BY revision;

-- name: insert_job_callback
INSERT INTO job_callbacks (job_id, url) VALUES (:job_id, :url);

-- name: callbacks_due
SELECT 1 FROM job_callbacks c JOIN jobs j ON j.id = c.job_id
WHERE c.delivered_at IS NULL AND c.given_up_at IS NULL AND c.next_attempt_at <= :now
  AND j.finished_at IS NOT NULL
LIMIT 1;

-- name: claim_due_callbacks
-- Finished jobs' callbacks that are due, held until :hold_until so that no other replica sends
-- them meanwhile (the outer condition is checked again on the row it updates).
UPDATE job_callbacks SET next_attempt_at = :hold_until
WHERE job_id IN (SELECT c.job_id FROM job_callbacks c JOIN jobs j ON j.id = c.job_id
                 WHERE c.delivered_at IS NULL AND c.given_up_at IS NULL
                   AND c.next_attempt_at <= :now AND j.finished_at IS NOT NULL
                 ORDER BY c.next_attempt_at LIMIT :limit)
  AND delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= :now
RETURNING job_id, url, attempts;

-- name: callback_delivered
UPDATE job_callbacks SET attempts = attempts + 1, delivered_at = :now, last_error = NULL
WHERE job_id = :job_id;

-- name: callback_failed
UPDATE job_callbacks SET attempts = attempts + 1, last_error = :error,
    next_attempt_at = COALESCE(:next_attempt_at, next_attempt_at), given_up_at = :given_up_at
WHERE job_id = :job_id;

-- name: get_job_callback
SELECT job_id, url, attempts, next_attempt_at, delivered_at, given_up_at, last_error
FROM job_callbacks WHERE job_id = :job_id;

-- name: warm_runners
SELECT COUNT(*) FROM runners WHERE model = :model AND state IN ('idle', 'busy');

-- name: leased_tiers_by_runner
-- By the runner's model: a lease of a command queue is held by a runner of the model too.
SELECT DISTINCT l.runner_id, r.tier FROM leases l JOIN requests r ON r.lease_id = l.id
JOIN runners ru ON ru.id = l.runner_id
WHERE ru.model = :model AND l.released_at IS NULL AND r.status = 'leased';

-- name: leased_requests_of_runner
SELECT r.id, r.tier FROM leases l JOIN requests r ON r.lease_id = l.id
WHERE l.runner_id = :runner_id AND l.released_at IS NULL AND r.status = 'leased';

-- name: return_reclaimed
-- A request its runner handed back for online work: queued again, the attempt not counted.
UPDATE requests SET status = 'queued', lease_id = NULL, attempts = attempts - 1
WHERE id = :id AND lease_id = :lease_id AND status = 'leased';

-- name: append_command_log
-- Kept only while the runner still holds the command under an open lease.
INSERT INTO command_logs (job_id, request_id, lease_id, runner_id, at, text)
SELECT r.job_id, r.id, l.id, l.runner_id, :now, :text
FROM requests r JOIN leases l ON l.id = r.lease_id
WHERE r.id = :request_id AND l.runner_id = :runner_id AND l.released_at IS NULL
  AND r.status = 'leased';

-- name: command_log
SELECT lease_id, runner_id, at, text FROM command_logs WHERE job_id = :job_id ORDER BY seq;

-- name: cancelled_leased_requests
SELECT r.id FROM leases l JOIN requests r ON r.lease_id = l.id JOIN jobs j ON j.id = r.job_id
WHERE l.runner_id = :runner_id AND l.released_at IS NULL AND r.status = 'leased'
  AND j.cancelled_at IS NOT NULL;

-- name: record_checkpointed_run
INSERT INTO checkpointed_runs (batch_id, request_id, job_id)
SELECT :batch_id, id, job_id FROM requests WHERE id = :id;

-- name: recent_job_times
-- (By the jobs_created index: a minute of jobs, the model's filtered from them.)
SELECT tier, created_at, finished_at FROM jobs
WHERE created_at >= :since AND model = :model ORDER BY created_at DESC LIMIT :limit;
