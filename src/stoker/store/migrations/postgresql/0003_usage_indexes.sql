-- Cost accounting reads batches and state intervals by time window.
CREATE INDEX batches_started ON batches (started_at);
CREATE INDEX runner_intervals_started ON runner_intervals (started_at);
