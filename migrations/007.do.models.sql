-- The model registry. A version's ONNX bytes live in the database, not on a disk: every API
-- instance reads the same rows, so any of them can load any version without a shared volume.
CREATE TABLE models (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name           text NOT NULL CONSTRAINT models_name_key UNIQUE
                 CONSTRAINT models_name_kebab_case CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(name) <= 64),
  task           text NOT NULL CONSTRAINT models_task_known CHECK (task IN ('classification', 'regression')),
  active_version text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_versions (
  model_id    uuid NOT NULL REFERENCES models (id) ON DELETE CASCADE,
  version     text NOT NULL,
  card        jsonb NOT NULL,
  onnx        bytea NOT NULL,
  onnx_sha256 text NOT NULL CONSTRAINT model_versions_sha256_hex CHECK (onnx_sha256 ~ '^[0-9a-f]{64}$'),
  size_bytes  integer NOT NULL CONSTRAINT model_versions_size_positive CHECK (size_bytes > 0),
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
  CONSTRAINT model_versions_pkey PRIMARY KEY (model_id, version)
);

-- The active version must exist: deleting it fails here even if a service forgot to check.
ALTER TABLE models ADD CONSTRAINT models_active_version_fkey
  FOREIGN KEY (id, active_version) REFERENCES model_versions (model_id, version);
