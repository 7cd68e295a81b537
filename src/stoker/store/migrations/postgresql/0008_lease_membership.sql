-- A lease remembers which requests it granted, so a report can be held to them (ids outside
-- the lease are refused; ids left out are put back), and when it was reported, so a report
-- repeated by a retrying runner records its batch once.
ALTER TABLE leases ADD COLUMN request_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE leases ADD COLUMN reported_at DOUBLE PRECISION;
