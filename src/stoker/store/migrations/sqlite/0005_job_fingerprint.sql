-- A digest of what a submission asked, so an Idempotency-Key reused for different work is
-- refused instead of answered with the old job.
ALTER TABLE jobs ADD COLUMN fingerprint TEXT;
