-- PostgreSQL's versions of the queries whose semantics need its row locks.

-- name: lease_group
UPDATE requests SET status = 'leased', lease_id = :lease_id, attempts = attempts + 1
WHERE id IN (SELECT id FROM requests
             WHERE model = :model AND tier = :tier AND team = :team AND status = 'queued'
             ORDER BY enqueued_at, seq LIMIT :count
             FOR UPDATE SKIP LOCKED);

-- name: expired_leases
SELECT id FROM leases WHERE released_at IS NULL AND expires_at <= :now
ORDER BY id FOR UPDATE SKIP LOCKED;

-- name: lock_runner
SELECT state FROM runners WHERE id = :id FOR UPDATE;

-- name: get_admission
SELECT bucket, bucket_at, window_start, window_submissions, tripped_until
FROM team_admission WHERE team = :team FOR UPDATE;
