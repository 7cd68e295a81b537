-- A big job's request rows, staged a page per row before the job is admitted and moved into
-- requests a page per transaction after, so that no transaction holds the write lock (or the
-- team's admission lock) for a whole 100,000-request job. A page whose job row does not exist
-- belongs to a submission not admitted (yet, or ever: it is dropped once stale).
CREATE TABLE staged_requests (
    job_id        TEXT NOT NULL,
    page          INTEGER NOT NULL,
    request_count INTEGER NOT NULL,
    -- What every row of the job shares (the job row may not exist yet).
    model         TEXT NOT NULL,
    tier          TEXT NOT NULL,
    team          TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL,
    page_rows     TEXT NOT NULL,
    page_hits     TEXT NOT NULL,
    staged_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, page)
);
