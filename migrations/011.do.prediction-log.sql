-- Predictions as they were served, for audits and drift: written in batches off the request
-- path, so a row may arrive a second after its answer. No foreign keys: a log outlives the
-- users, keys and model versions it names, and an insert must not wait on their locks.
CREATE TABLE prediction_log (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  model       text NOT NULL,
  version     text NOT NULL,
  inputs      jsonb NOT NULL,
  output      jsonb NOT NULL,
  latency_ms  double precision NOT NULL,
  request_id  text,
  user_id     uuid,
  api_key_id  uuid,
  created_at  timestamptz NOT NULL
);

-- Every read is one model over a time range, newest first.
CREATE INDEX prediction_log_model_created_at ON prediction_log (model, created_at DESC, id DESC);
