-- The autoscaler's decisions, with the signals behind each; which replica's controller acts
-- for a model pool (a lease: one holder until it expires); batches by model and end, for
-- the throughput the pool measures.
CREATE TABLE pool_decisions (
    id          TEXT PRIMARY KEY,
    model       TEXT NOT NULL,
    decided_at  REAL NOT NULL,
    controller  TEXT NOT NULL,
    desired     INTEGER NOT NULL,
    started     INTEGER NOT NULL,
    stopped     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    signals     TEXT NOT NULL
);
CREATE INDEX pool_decisions_model ON pool_decisions (model, decided_at);

CREATE TABLE pool_controllers (
    model       TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  REAL NOT NULL
);

CREATE INDEX batches_model_ended ON batches (model, ended_at);
