-- The queue summary without a hot row: statements append their changes to queue_group_deltas
-- (no row is updated, so concurrent leases of one group do not wait on each other); reads add
-- the deltas to the folded counts; the reaper folds the deltas in about once a second.
CREATE TABLE queue_group_deltas (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model TEXT NOT NULL,
    tier  TEXT NOT NULL,
    team  TEXT NOT NULL,
    delta INTEGER NOT NULL,
    head  DOUBLE PRECISION
);
CREATE INDEX queue_group_deltas_model ON queue_group_deltas (model, tier, team);

CREATE OR REPLACE FUNCTION stoker_queue_groups_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_group_deltas (model, tier, team, delta, head)
    SELECT model, tier, team, COUNT(*), MIN(enqueued_at)
    FROM new_rows WHERE status = 'queued' GROUP BY model, tier, team;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION stoker_queue_groups_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Arrivals and departures as separate rows: a departure means the head must be looked up.
    INSERT INTO queue_group_deltas (model, tier, team, delta, head)
    SELECT g.model, g.tier, g.team, g.delta, g.head FROM (
        SELECT n.model, n.tier, n.team, COUNT(*)::INTEGER AS delta, MIN(n.enqueued_at) AS head
        FROM new_rows n JOIN old_rows o ON o.seq = n.seq
        WHERE n.status = 'queued' AND o.status <> 'queued' GROUP BY n.model, n.tier, n.team
        UNION ALL
        SELECT o.model, o.tier, o.team, -COUNT(*)::INTEGER, NULL
        FROM new_rows n JOIN old_rows o ON o.seq = n.seq
        WHERE o.status = 'queued' AND n.status <> 'queued' GROUP BY o.model, o.tier, o.team
    ) AS g;
    RETURN NULL;
END
$$;

DROP FUNCTION stoker_queue_groups_add(TEXT, TEXT, TEXT, INTEGER, DOUBLE PRECISION);
