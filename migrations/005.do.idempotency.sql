-- Idempotency-Key records (IETF httpapi-idempotency-key-header): one per caller and key.
CREATE TABLE idempotency_keys (
  -- "user:<id>" or "key:<id>": the same key string from two callers is two records.
  scope          text NOT NULL,
  key            text NOT NULL,
  method         text NOT NULL,
  path           text NOT NULL,
  -- SHA-256 of the canonical request body: a reuse with another body is refused.
  request_hash   text NOT NULL,
  -- NULL while the first request is executing; then the stored answer.
  status_code    integer,
  response_headers jsonb,
  response_body  text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  completed_at   timestamptz,
  expires_at     timestamptz NOT NULL,
  PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
