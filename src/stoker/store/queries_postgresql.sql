-- PostgreSQL's versions of the queries whose semantics need its row locks.

-- name: runner_done_with_batch
-- A busy runner with no open lease left is idle again, with its state interval, in one
-- statement. (SQLite runs the steps one by one.)
WITH idle AS (
    UPDATE runners SET state = 'idle', state_since = :now, last_heartbeat_at = :now
    WHERE id = :id AND state = 'busy'
      AND NOT EXISTS (SELECT 1 FROM leases WHERE runner_id = :id AND released_at IS NULL)
    RETURNING id
), closed AS (
    UPDATE runner_intervals SET ended_at = :now
    WHERE runner_id IN (SELECT id FROM idle) AND ended_at IS NULL
)
INSERT INTO runner_intervals (runner_id, state, started_at) SELECT id, 'idle', :now FROM idle;

-- name: lease_batch
-- The whole grant in one statement, so one round trip: the oldest queued requests of each
-- pick, the lease, and an idle runner marked busy with its state interval. Nothing is taken
-- for a runner that drains or has stopped. (SQLite, in process, runs the steps one by one.)
WITH picks AS (
    SELECT p.tier, p.team, p.n
    FROM unnest(CAST(:tiers AS TEXT[]), CAST(:teams AS TEXT[]), CAST(:counts AS INTEGER[]))
         AS p (tier, team, n)
    WHERE EXISTS (SELECT 1 FROM runners
                  WHERE id = :runner_id AND state NOT IN ('draining', 'stopped'))
), chosen AS (
    SELECT c.seq FROM picks p CROSS JOIN LATERAL (
        SELECT seq FROM requests
        WHERE model = :model AND tier = p.tier AND team = p.team AND status = 'queued'
          AND (revision IS NULL
               OR revision = (SELECT revision FROM runners WHERE id = :runner_id))
        ORDER BY enqueued_at, seq LIMIT p.n
        FOR UPDATE SKIP LOCKED) AS c
), taken AS (
    UPDATE requests SET status = 'leased', lease_id = :lease_id, attempts = attempts + 1
    WHERE seq IN (SELECT seq FROM chosen)
    RETURNING id, job_id, idx, custom_id, model, tier, endpoint, body, status, attempts,
              max_attempts, enqueued_at, last_error, priority, seq
), lease AS (
    INSERT INTO leases (id, runner_id, model, created_at, expires_at, request_ids)
    SELECT :lease_id, :runner_id, :model, :now, :expires_at,
           (SELECT CAST(json_agg(id) AS TEXT) FROM taken)
    WHERE EXISTS (SELECT 1 FROM taken)
), busy AS (
    UPDATE runners SET state = 'busy', state_since = :now, last_heartbeat_at = :now
    WHERE id = :runner_id AND state = 'idle' AND EXISTS (SELECT 1 FROM taken)
    RETURNING id
), closed AS (
    UPDATE runner_intervals SET ended_at = :now
    WHERE runner_id IN (SELECT id FROM busy) AND ended_at IS NULL
), opened AS (
    INSERT INTO runner_intervals (runner_id, state, started_at)
    SELECT id, 'busy', :now FROM busy
)
SELECT id, job_id, idx, custom_id, model, tier, endpoint, body, status, attempts,
       max_attempts, enqueued_at, last_error
FROM taken ORDER BY priority DESC, enqueued_at, seq;

-- name: expired_leases
SELECT id FROM leases WHERE released_at IS NULL AND expires_at <= :now
ORDER BY id FOR UPDATE SKIP LOCKED;

-- name: cache_lookup
SELECT key, text, finish_reason, prompt_tokens, completion_tokens, stop_sequence, logprobs,
       tool_calls
FROM result_cache WHERE key IN (SELECT jsonb_array_elements_text(CAST(:keys AS jsonb)));

-- name: lease_for_report
SELECT id, runner_id, model, released_at, request_ids, reported_at FROM leases WHERE id = :id
FOR UPDATE;

-- name: lock_runner
SELECT state FROM runners WHERE id = :id FOR UPDATE;

-- name: lock_team_admission
SELECT pg_advisory_xact_lock(hashtext('stoker_admission'), hashtext(:team));

-- name: get_admission
SELECT bucket, bucket_at, window_start, window_submissions, tripped_until
FROM team_admission WHERE team = :team FOR UPDATE;

-- name: insert_requests
INSERT INTO requests (id, job_id, idx, custom_id, model, tier, team, priority, endpoint, body,
                      status, attempts, max_attempts, enqueued_at, finished_at, cache_key,
                      revision)
SELECT id, :job_id, idx, custom_id, :model, :tier, :team, :priority, endpoint, body,
       CASE WHEN cached = 1 THEN 'succeeded' WHEN CAST(:cancelled AS BOOLEAN) THEN 'cancelled'
            ELSE 'queued' END, 0, :max_attempts, :now,
       CASE WHEN cached = 1 OR CAST(:cancelled AS BOOLEAN)
            THEN CAST(:now AS DOUBLE PRECISION) END, cache_key, CAST(:revision AS TEXT)
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    id TEXT, idx INTEGER, custom_id TEXT, endpoint TEXT, body TEXT, cache_key TEXT,
    cached INTEGER)
ORDER BY idx;

-- name: insert_results
INSERT INTO results (request_id, job_id, text, finish_reason, prompt_tokens, completion_tokens,
                     error, runner_id, batch_id, created_at, stop_sequence, logprobs,
                     tool_calls)
SELECT r.id, r.job_id, o.text, o.finish_reason, o.prompt_tokens, o.completion_tokens, o.error,
       :runner_id, :batch_id, :now, o.stop_sequence, o.logprobs, o.tool_calls
FROM jsonb_to_recordset(CAST(:outcomes AS jsonb)) AS o(
    request_id TEXT, text TEXT, finish_reason TEXT, prompt_tokens INTEGER,
    completion_tokens INTEGER, error TEXT, stop_sequence TEXT, logprobs TEXT,
    tool_calls TEXT)
JOIN requests r ON r.id = o.request_id
WHERE r.status IN ('queued', 'leased')  -- a finished, failed or cancelled request takes none
ORDER BY r.id
ON CONFLICT (request_id) DO NOTHING;

-- name: cache_store
INSERT INTO result_cache (key, text, finish_reason, prompt_tokens, completion_tokens, created_at,
                          stop_sequence, logprobs, tool_calls)
SELECT r.cache_key, COALESCE(o.text, ''), COALESCE(o.finish_reason, 'stop'), o.prompt_tokens,
       o.completion_tokens, :now, o.stop_sequence, o.logprobs, o.tool_calls
FROM jsonb_to_recordset(CAST(:outcomes AS jsonb)) AS o(
    request_id TEXT, text TEXT, finish_reason TEXT, prompt_tokens INTEGER,
    completion_tokens INTEGER, error TEXT, stop_sequence TEXT, logprobs TEXT,
    tool_calls TEXT)
JOIN requests r ON r.id = o.request_id
WHERE r.cache_key IS NOT NULL AND o.error IS NULL
ORDER BY r.cache_key
ON CONFLICT (key) DO NOTHING;

-- name: finish_requests
UPDATE requests r SET
    status = CASE WHEN o.error IS NULL THEN 'succeeded' ELSE 'failed' END,
    lease_id = NULL, last_error = o.error, finished_at = :now
FROM jsonb_to_recordset(CAST(:outcomes AS jsonb)) AS o(request_id TEXT, error TEXT)
WHERE r.id = o.request_id AND r.status IN ('queued', 'leased');

-- name: put_back_leased
-- As in queries.sql; the cancelled test joins the job once, by its primary key.
UPDATE requests r SET
    status = CASE WHEN j.cancelled_at IS NOT NULL THEN 'cancelled'
                  WHEN r.attempts >= r.max_attempts THEN 'failed' ELSE 'queued' END,
    last_error = CASE WHEN j.cancelled_at IS NOT NULL THEN r.last_error
                      ELSE COALESCE(CAST(:errors AS jsonb) ->> r.id, :error) END,
    finished_at = CASE WHEN j.cancelled_at IS NOT NULL OR r.attempts >= r.max_attempts
                       THEN :now ELSE r.finished_at END,
    lease_id = NULL
FROM jobs j
WHERE j.id = r.job_id AND r.lease_id = :lease_id AND r.status = 'leased'
RETURNING r.status;

-- name: finish_jobs_of_requests
-- The touched jobs first, by the requests' primary key (as a join, the planner walked every
-- unfinished job's requests: milliseconds per report with a backlog).
WITH touched AS MATERIALIZED (
    SELECT DISTINCT job_id FROM requests
    WHERE id = ANY (ARRAY(SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))))
UPDATE jobs SET finished_at = :now
FROM touched
WHERE jobs.id = touched.job_id AND jobs.finished_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM requests r
                  WHERE r.job_id = jobs.id AND r.status IN ('queued', 'leased'))
  AND NOT EXISTS (SELECT 1 FROM staged_requests s WHERE s.job_id = jobs.id);

-- The summary is the folded counts plus the deltas not folded yet (migration 0005). A group
-- with departures not yet folded has its head looked up (one probe of the queue index).

-- name: queue_groups
SELECT tier, team, queued,
       CASE WHEN departed THEN (SELECT MIN(r.enqueued_at) FROM requests r
                                WHERE r.model = :model AND r.tier = s.tier
                                  AND r.team = s.team AND r.status = 'queued')
            ELSE head END
FROM (SELECT tier, team, SUM(queued)::INTEGER AS queued, MIN(head) AS head,
             BOOL_OR(queued < 0) AS departed
      FROM (SELECT tier, team, queued, CASE WHEN queued > 0 THEN head_enqueued_at END AS head
            FROM queue_groups WHERE model = :model
            UNION ALL
            SELECT tier, team, delta, head FROM queue_group_deltas WHERE model = :model) AS g
      GROUP BY tier, team HAVING SUM(queued) > 0) AS s;

-- name: queue_depth_by_model
SELECT model, tier, SUM(queued)::INTEGER FROM (
    SELECT model, tier, queued FROM queue_groups
    UNION ALL SELECT model, tier, delta FROM queue_group_deltas) AS g
GROUP BY model, tier HAVING SUM(queued) > 0;

-- name: team_queued
SELECT COALESCE(SUM(queued), 0) FROM (
    SELECT queued FROM queue_groups WHERE team = :team
    UNION ALL SELECT delta FROM queue_group_deltas WHERE team = :team) AS g;

-- name: fold_queue_summary
WITH taken AS (DELETE FROM queue_group_deltas RETURNING model, tier, team, delta, head),
     summed AS (SELECT model, tier, team, SUM(delta)::INTEGER AS delta,
                       MIN(head) FILTER (WHERE delta > 0) AS head
                FROM taken GROUP BY model, tier, team)
INSERT INTO queue_groups (model, tier, team, queued, head_enqueued_at)
SELECT model, tier, team, delta, head FROM summed ORDER BY model, tier, team
ON CONFLICT (model, tier, team) DO UPDATE SET
    queued = queue_groups.queued + EXCLUDED.queued,
    head_enqueued_at = (SELECT MIN(r.enqueued_at) FROM requests r
                        WHERE r.model = EXCLUDED.model AND r.tier = EXCLUDED.tier
                          AND r.team = EXCLUDED.team AND r.status = 'queued');

-- name: add_batch_usage
INSERT INTO team_usage_deltas (team, day, completion_tokens)
SELECT r.team, :day, SUM(s.completion_tokens)
FROM results s JOIN requests r ON r.id = s.request_id
WHERE s.batch_id = :batch_id
GROUP BY r.team;

-- name: team_tokens_on
SELECT COALESCE(SUM(completion_tokens), 0) FROM (
    SELECT completion_tokens FROM team_usage WHERE team = :team AND day = :day
    UNION ALL SELECT completion_tokens FROM team_usage_deltas WHERE team = :team AND day = :day
) AS u;

-- name: fold_usage
WITH taken AS (DELETE FROM team_usage_deltas RETURNING team, day, completion_tokens)
INSERT INTO team_usage (team, day, shard, completion_tokens)
SELECT team, day, 0, SUM(completion_tokens) FROM taken GROUP BY team, day ORDER BY team, day
ON CONFLICT (team, day, shard) DO UPDATE
SET completion_tokens = team_usage.completion_tokens + EXCLUDED.completion_tokens;

-- name: job_cancelled_for_move
-- The job row is locked while a page moves in, so a cancel either lands before (the page comes
-- in cancelled) or after (it cancels the page's queued rows).
SELECT cancelled_at IS NOT NULL FROM jobs WHERE id = :job_id FOR UPDATE;
