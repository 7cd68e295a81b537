-- Jobs, requests, results, runners and their state intervals, leases, batch records.
CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    team          TEXT NOT NULL,
    tier          TEXT NOT NULL,
    model         TEXT NOT NULL,
    created_at    REAL NOT NULL,
    cancelled_at  REAL,
    finished_at   REAL,
    request_count INTEGER NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_created ON jobs (created_at);

CREATE TABLE requests (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    job_id       TEXT NOT NULL REFERENCES jobs (id),
    idx          INTEGER NOT NULL,
    custom_id    TEXT NOT NULL,
    model        TEXT NOT NULL,
    tier         TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    endpoint     TEXT NOT NULL,
    body         TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    enqueued_at  REAL NOT NULL,
    lease_id     TEXT,
    last_error   TEXT,
    finished_at  REAL,
    UNIQUE (job_id, custom_id),
    UNIQUE (job_id, idx)
);
-- The queue: only queued rows, in dispatch order, per model.
CREATE INDEX requests_queue ON requests (model, priority DESC, enqueued_at, seq)
    WHERE status = 'queued';
CREATE INDEX requests_lease ON requests (lease_id) WHERE lease_id IS NOT NULL;
CREATE INDEX requests_job_status ON requests (job_id, status);

CREATE TABLE results (
    request_id        TEXT PRIMARY KEY REFERENCES requests (id),
    job_id            TEXT NOT NULL,
    text              TEXT,
    finish_reason     TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    error             TEXT,
    runner_id         TEXT,
    batch_id          TEXT,
    created_at        REAL NOT NULL
);

CREATE TABLE runners (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    model             TEXT NOT NULL,
    state             TEXT NOT NULL,
    pid               INTEGER,
    host              TEXT NOT NULL,
    max_batch_size    INTEGER NOT NULL,
    max_wait_ms       INTEGER NOT NULL,
    registered_at     REAL NOT NULL,
    last_heartbeat_at REAL NOT NULL,
    state_since       REAL NOT NULL
);

CREATE TABLE runner_intervals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    runner_id  TEXT NOT NULL REFERENCES runners (id),
    state      TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at   REAL
);
CREATE INDEX runner_intervals_runner ON runner_intervals (runner_id, started_at);

CREATE TABLE leases (
    id          TEXT PRIMARY KEY,
    runner_id   TEXT NOT NULL REFERENCES runners (id),
    model       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    released_at REAL,
    outcome     TEXT
);
CREATE INDEX leases_open ON leases (expires_at) WHERE released_at IS NULL;

CREATE TABLE batches (
    id                TEXT PRIMARY KEY,
    runner_id         TEXT NOT NULL,
    model             TEXT NOT NULL,
    lease_id          TEXT NOT NULL,
    started_at        REAL NOT NULL,
    ended_at          REAL NOT NULL,
    request_ids       TEXT NOT NULL,
    request_count     INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL
);
CREATE INDEX batches_runner ON batches (runner_id, started_at);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
