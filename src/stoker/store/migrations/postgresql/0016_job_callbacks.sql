-- A job's completion callback: the URL its owner named, and how delivery went. A row is due
-- once its job has finished and next_attempt_at has passed; delivered_at or given_up_at ends it.
CREATE TABLE job_callbacks (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id),
    url TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    delivered_at DOUBLE PRECISION,
    given_up_at DOUBLE PRECISION,
    last_error TEXT
);
CREATE INDEX job_callbacks_due ON job_callbacks (next_attempt_at)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
