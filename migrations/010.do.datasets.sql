-- Uploaded datasets. Each ready dataset's rows live in a typed table of its own in the
-- `datasets` schema (`datasets.rows_<id without dashes>`), created by the import; this table
-- holds what the API shows about it. Row tables are not declared here because they come and
-- go with their datasets; the `datasets` schema keeps them apart from the application's tables.
CREATE SCHEMA IF NOT EXISTS datasets;

CREATE TABLE datasets (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name         text NOT NULL CONSTRAINT datasets_name_length CHECK (length(name) BETWEEN 1 AND 200),
  description  text CONSTRAINT datasets_description_length CHECK (length(description) <= 2000),
  format       text NOT NULL CONSTRAINT datasets_format_known CHECK (format IN ('csv', 'json', 'ndjson', 'parquet')),
  status       text NOT NULL CONSTRAINT datasets_status_known CHECK (status IN ('importing', 'ready', 'failed')),
  -- The column mapping (API name, name in the file, SQL name, type, nullable) and its stats.
  columns      jsonb NOT NULL DEFAULT '[]',
  row_count    bigint NOT NULL DEFAULT 0,
  -- The uploaded file's size and SHA-256; a dataset made by a job (batch predictions) has
  -- no file: size 0, no hash.
  size_bytes   bigint NOT NULL CONSTRAINT datasets_size_nonnegative CHECK (size_bytes >= 0),
  sha256       text CONSTRAINT datasets_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  -- Import options (delimiter, encoding, on_error) and, for skipped or failed lines, the report.
  import       jsonb NOT NULL DEFAULT '{}',
  error        jsonb,
  -- The job that imports or produced the dataset: unique, so a re-run job finds its dataset
  -- instead of creating a second one.
  job_id       uuid CONSTRAINT datasets_job_id_key UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX datasets_owner_created_idx ON datasets (owner_id, created_at DESC, id DESC);
CREATE INDEX datasets_created_idx ON datasets (created_at DESC, id DESC);
