-- Keep the queue summary per statement instead of per row: a lease (one UPDATE of up to a
-- batch of rows) or a submission (one INSERT of a whole job) then updates each summary row
-- once, at the end of its statement, instead of taking the summary row's lock at its first
-- row and recomputing the head once per row.
DROP TRIGGER requests_queue_groups ON requests;
DROP FUNCTION stoker_track_queue_groups();

CREATE FUNCTION stoker_queue_groups_add(model_ TEXT, tier_ TEXT, team_ TEXT, n INTEGER,
                                        head DOUBLE PRECISION) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO queue_groups (model, tier, team, queued, head_enqueued_at)
    VALUES (model_, tier_, team_, n, head)
    ON CONFLICT (model, tier, team) DO UPDATE SET
        queued = queue_groups.queued + EXCLUDED.queued,
        head_enqueued_at = CASE
            WHEN queue_groups.queued = 0 OR queue_groups.head_enqueued_at IS NULL
            THEN EXCLUDED.head_enqueued_at
            ELSE LEAST(queue_groups.head_enqueued_at, EXCLUDED.head_enqueued_at) END;
$$;

CREATE FUNCTION stoker_queue_groups_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g RECORD;
BEGIN
    -- Groups in one fixed order, so concurrent statements lock summary rows in that order.
    FOR g IN SELECT model, tier, team, COUNT(*)::INTEGER AS n, MIN(enqueued_at) AS head
             FROM new_rows WHERE status = 'queued'
             GROUP BY model, tier, team ORDER BY model, tier, team LOOP
        PERFORM stoker_queue_groups_add(g.model, g.tier, g.team, g.n, g.head);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION stoker_queue_groups_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g RECORD;
BEGIN
    FOR g IN SELECT n.model, n.tier, n.team,
                    COUNT(*) FILTER (WHERE n.status = 'queued')::INTEGER AS entered,
                    COUNT(*) FILTER (WHERE o.status = 'queued')::INTEGER AS left_,
                    MIN(n.enqueued_at) FILTER (WHERE n.status = 'queued') AS head
             FROM new_rows n JOIN old_rows o ON o.seq = n.seq
             WHERE (n.status = 'queued') <> (o.status = 'queued')
             GROUP BY n.model, n.tier, n.team ORDER BY n.model, n.tier, n.team LOOP
        IF g.entered > 0 THEN
            PERFORM stoker_queue_groups_add(g.model, g.tier, g.team, g.entered, g.head);
        END IF;
        IF g.left_ > 0 THEN
            UPDATE queue_groups SET
                queued = queued - g.left_,
                head_enqueued_at = (SELECT MIN(r.enqueued_at) FROM requests r
                                    WHERE r.model = g.model AND r.tier = g.tier
                                      AND r.team = g.team AND r.status = 'queued')
            WHERE model = g.model AND tier = g.tier AND team = g.team;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER requests_queue_groups_inserted AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stoker_queue_groups_inserted();
CREATE TRIGGER requests_queue_groups_updated AFTER UPDATE ON requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stoker_queue_groups_updated();
