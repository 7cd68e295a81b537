-- Jobs, requests, results, runners and their state intervals, leases, batch records.
CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    team          TEXT NOT NULL,
    tier          TEXT NOT NULL,
    model         TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    cancelled_at  DOUBLE PRECISION,
    finished_at   DOUBLE PRECISION,
    request_count INTEGER NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    idempotency_key   TEXT,
    concurrency_group TEXT,
    superseded_by     TEXT
);
CREATE INDEX jobs_created ON jobs (created_at);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (team, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_group ON jobs (team, concurrency_group)
    WHERE concurrency_group IS NOT NULL AND finished_at IS NULL;

CREATE TABLE requests (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    job_id       TEXT NOT NULL REFERENCES jobs (id),
    idx          INTEGER NOT NULL,
    custom_id    TEXT NOT NULL,
    model        TEXT NOT NULL,
    tier         TEXT NOT NULL,
    team         TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    endpoint     TEXT NOT NULL,
    body         TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    enqueued_at  DOUBLE PRECISION NOT NULL,
    lease_id     TEXT,
    last_error   TEXT,
    finished_at  DOUBLE PRECISION,
    cache_key    TEXT,
    UNIQUE (job_id, custom_id),
    UNIQUE (job_id, idx)
);
-- The queue: only queued rows, oldest first within each (model, tier, team) group.
CREATE INDEX requests_queue ON requests (model, tier, team, enqueued_at, seq)
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
    cached            INTEGER NOT NULL DEFAULT 0,
    created_at        DOUBLE PRECISION NOT NULL
);

CREATE INDEX results_batch ON results (batch_id);
CREATE INDEX results_job ON results (job_id);

CREATE TABLE runners (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    model             TEXT NOT NULL,
    state             TEXT NOT NULL,
    pid               INTEGER,
    host              TEXT NOT NULL,
    max_batch_size    INTEGER NOT NULL,
    max_wait_ms       INTEGER NOT NULL,
    registered_at     DOUBLE PRECISION NOT NULL,
    last_heartbeat_at DOUBLE PRECISION NOT NULL,
    state_since       DOUBLE PRECISION NOT NULL
);

CREATE TABLE runner_intervals (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    runner_id  TEXT NOT NULL REFERENCES runners (id),
    state      TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    ended_at   DOUBLE PRECISION
);
CREATE INDEX runner_intervals_runner ON runner_intervals (runner_id, started_at);
CREATE INDEX runner_intervals_open ON runner_intervals (runner_id) WHERE ended_at IS NULL;

CREATE TABLE leases (
    id          TEXT PRIMARY KEY,
    runner_id   TEXT NOT NULL REFERENCES runners (id),
    model       TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    expires_at  DOUBLE PRECISION NOT NULL,
    released_at DOUBLE PRECISION,
    outcome     TEXT
);
CREATE INDEX leases_open ON leases (expires_at) WHERE released_at IS NULL;
-- A runner's open leases, looked up on every lease, completion and runner listing.
CREATE INDEX leases_runner_open ON leases (runner_id) WHERE released_at IS NULL;

CREATE TABLE batches (
    id                TEXT PRIMARY KEY,
    runner_id         TEXT NOT NULL,
    model             TEXT NOT NULL,
    lease_id          TEXT NOT NULL,
    started_at        DOUBLE PRECISION NOT NULL,
    ended_at          DOUBLE PRECISION NOT NULL,
    request_ids       TEXT NOT NULL,
    request_count     INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL
);
CREATE INDEX batches_runner ON batches (runner_id, started_at);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- The queue's summary per (model, tier, team), kept by triggers on every status change, so
-- that picking a batch reads a few hundred rows however deep the queue is.
CREATE TABLE queue_groups (
    model            TEXT NOT NULL,
    tier             TEXT NOT NULL,
    team             TEXT NOT NULL,
    queued           INTEGER NOT NULL,
    head_enqueued_at DOUBLE PRECISION,
    PRIMARY KEY (model, tier, team)
);

CREATE FUNCTION stoker_track_queue_groups() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'queued' AND (TG_OP = 'INSERT' OR OLD.status <> 'queued') THEN
        INSERT INTO queue_groups (model, tier, team, queued, head_enqueued_at)
        VALUES (NEW.model, NEW.tier, NEW.team, 1, NEW.enqueued_at)
        ON CONFLICT (model, tier, team) DO UPDATE SET
            queued = queue_groups.queued + 1,
            head_enqueued_at = CASE
                WHEN queue_groups.queued = 0 OR queue_groups.head_enqueued_at IS NULL
                THEN EXCLUDED.head_enqueued_at
                ELSE LEAST(queue_groups.head_enqueued_at, EXCLUDED.head_enqueued_at) END;
    ELSIF TG_OP = 'UPDATE' AND OLD.status = 'queued' AND NEW.status <> 'queued' THEN
        UPDATE queue_groups SET
            queued = queued - 1,
            head_enqueued_at = (SELECT MIN(r.enqueued_at) FROM requests r
                                WHERE r.model = OLD.model AND r.tier = OLD.tier
                                  AND r.team = OLD.team AND r.status = 'queued')
        WHERE model = OLD.model AND tier = OLD.tier AND team = OLD.team;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER requests_queue_groups AFTER INSERT OR UPDATE OF status ON requests
    FOR EACH ROW EXECUTE FUNCTION stoker_track_queue_groups();

-- Admission state per team (token bucket, circuit breaker) and usage per team and UTC day.
CREATE TABLE team_admission (
    team               TEXT PRIMARY KEY,
    bucket             DOUBLE PRECISION NOT NULL,
    bucket_at          DOUBLE PRECISION NOT NULL,
    window_start       DOUBLE PRECISION NOT NULL,
    window_submissions INTEGER NOT NULL,
    tripped_until      DOUBLE PRECISION NOT NULL
);

-- Sharded, so that concurrent completions of one team do not queue on a single row.
CREATE TABLE team_usage (
    team              TEXT NOT NULL,
    day               TEXT NOT NULL,
    shard             INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (team, day, shard)
);

-- Answers to deterministic requests (temperature 0 or a fixed seed), by request fingerprint.
CREATE TABLE result_cache (
    key               TEXT PRIMARY KEY,
    text              TEXT NOT NULL,
    finish_reason     TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at        DOUBLE PRECISION NOT NULL
);
