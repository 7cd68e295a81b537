-- Rolling model updates: the checkpoint each roll moves a model's pool to, and what became of
-- it (one roll in progress per model at most); each runner's checkpoint revision.
CREATE TABLE model_rolls (
    id          TEXT PRIMARY KEY,
    model       TEXT NOT NULL,
    path        TEXT NOT NULL,
    revision    TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    message     TEXT
);
CREATE UNIQUE INDEX model_rolls_one_in_progress ON model_rolls (model) WHERE status = 'rolling';
CREATE INDEX model_rolls_model ON model_rolls (model, started_at);

ALTER TABLE runners ADD COLUMN revision TEXT;
-- A job may pin its requests to the checkpoint revision current when it was submitted: only a
-- runner of that revision leases them, through a rolling update too.
ALTER TABLE requests ADD COLUMN revision TEXT;
ALTER TABLE staged_requests ADD COLUMN revision TEXT;
