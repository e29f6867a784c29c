-- Append-only: the application inserts and reads, never updates or deletes.
-- No foreign keys: events outlive the users, keys and resources they describe.
CREATE TABLE audit_events (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  at             timestamptz NOT NULL DEFAULT now(),
  actor_user_id  uuid,
  actor_api_key_id uuid,
  action         text NOT NULL,
  resource_type  text NOT NULL,
  resource_id    text NOT NULL,
  changes        jsonb NOT NULL DEFAULT '{}'::jsonb,
  request_id     text,
  client_address text
);

CREATE INDEX audit_events_at_idx ON audit_events (at, id);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id, at);
CREATE INDEX audit_events_actor_user_idx ON audit_events (actor_user_id, at);
CREATE INDEX audit_events_action_idx ON audit_events (action, at);
