-- OpenAI-compatible Files (uploaded batch inputs) and Batches (each one a Stoker job).
CREATE TABLE files (
    id         TEXT PRIMARY KEY,
    team       TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    filename   TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    content    BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    deleted_at DOUBLE PRECISION
);
CREATE INDEX files_team ON files (team, created_at);

CREATE TABLE openai_batches (
    id                TEXT PRIMARY KEY,
    team              TEXT NOT NULL,
    job_id            TEXT REFERENCES jobs (id),
    endpoint          TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    created_at        DOUBLE PRECISION NOT NULL,
    expires_at        DOUBLE PRECISION NOT NULL,
    total_lines       INTEGER NOT NULL,
    invalid_lines     TEXT NOT NULL,
    errors            TEXT,
    failed_at         DOUBLE PRECISION,
    cancelling_at     DOUBLE PRECISION,
    expired_at        DOUBLE PRECISION
);
CREATE INDEX openai_batches_team ON openai_batches (team, created_at);
CREATE UNIQUE INDEX openai_batches_job ON openai_batches (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX openai_batches_open ON openai_batches (expires_at)
    WHERE expired_at IS NULL AND failed_at IS NULL;
