-- A job's deadline: past it, what has not run is cancelled (the job expired). NULL: none.
ALTER TABLE jobs ADD COLUMN expires_at REAL;
CREATE INDEX jobs_expiring ON jobs (expires_at)
    WHERE expires_at IS NOT NULL AND finished_at IS NULL AND cancelled_at IS NULL;
