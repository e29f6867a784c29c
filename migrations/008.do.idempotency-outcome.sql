-- What makes a claimed Idempotency-Key's outcome knowable after a crash or a lost answer.
ALTER TABLE idempotency_keys
  -- Until when the claiming request may still be running; after it, a record that did not
  -- commit is taken over by a retry. NULL on records written before this migration: their
  -- outcome is unknown, so they stay in progress until expires_at, as they did.
  ADD COLUMN lease_expires_at  timestamptz,
  -- Set inside the guarded work's own transaction: present if and only if the work committed.
  ADD COLUMN committed_at      timestamptz,
  -- Where the resource the work created can be read, e.g. /v1/orders/<id>.
  ADD COLUMN resource_location text;
