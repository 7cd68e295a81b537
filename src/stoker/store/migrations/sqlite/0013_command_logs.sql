-- The output of command jobs, as their runners ship it while they run: one row per piece, in
-- order (seq), each naming the run (lease) it came from.
CREATE TABLE command_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    request_id TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    runner_id TEXT NOT NULL,
    at REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX command_logs_job ON command_logs (job_id, seq);

-- The runs of a command that were stopped and handed back (reclaimed, drained): their time is
-- the job's, since its progress is in its checkpoint; no result row says so, so this does.
CREATE TABLE checkpointed_runs (
    batch_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    PRIMARY KEY (batch_id, request_id)
);
CREATE INDEX checkpointed_runs_job ON checkpointed_runs (job_id);
