-- Text generation is a task of its own, and a version served by a remote backend stores no
-- graph: its card names the upstream, and its bytes are empty.
ALTER TABLE models DROP CONSTRAINT models_task_known;
ALTER TABLE models ADD CONSTRAINT models_task_known
  CHECK (task IN ('classification', 'regression', 'text-generation'));
ALTER TABLE model_versions DROP CONSTRAINT model_versions_size_positive;
ALTER TABLE model_versions ADD CONSTRAINT model_versions_size_not_negative CHECK (size_bytes >= 0);
