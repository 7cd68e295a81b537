-- Token usage without a hot row: a completion appends its tokens per team here instead of
-- updating the team's usage row, whose lock every concurrent completion of the team would
-- wait on until commit. Reads add the pending rows; the reaper folds them into team_usage
-- about once a second, as it does the queue summary's deltas.
CREATE TABLE team_usage_deltas (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    team              TEXT NOT NULL,
    day               TEXT NOT NULL,
    completion_tokens INTEGER NOT NULL
);
CREATE INDEX team_usage_deltas_team ON team_usage_deltas (team, day);
