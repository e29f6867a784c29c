-- Versions without a graph and text-generation models cannot exist under the old checks:
-- they go, and a model whose active version goes is left without one.
DELETE FROM models WHERE task = 'text-generation';
UPDATE models SET active_version = NULL
  WHERE (id, active_version) IN (SELECT model_id, version FROM model_versions WHERE size_bytes = 0);
DELETE FROM model_versions WHERE size_bytes = 0;
ALTER TABLE model_versions DROP CONSTRAINT model_versions_size_not_negative;
ALTER TABLE model_versions ADD CONSTRAINT model_versions_size_positive CHECK (size_bytes > 0);
ALTER TABLE models DROP CONSTRAINT models_task_known;
ALTER TABLE models ADD CONSTRAINT models_task_known CHECK (task IN ('classification', 'regression'));
