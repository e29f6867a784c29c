ALTER TABLE idempotency_keys
  DROP COLUMN resource_location,
  DROP COLUMN committed_at,
  DROP COLUMN lease_expires_at;
