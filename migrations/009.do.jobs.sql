-- Background jobs: the table is the source of truth; the queue (BullMQ or the in-process
-- runner) only carries ids. A row with enqueued_at NULL is an outbox entry the relay still
-- has to hand over, so a crash between the commit and the enqueue loses nothing.
CREATE TABLE jobs (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  type             text NOT NULL,
  status           text NOT NULL DEFAULT 'queued'
                   CONSTRAINT jobs_status_check
                   CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  progress         double precision NOT NULL DEFAULT 0
                   CONSTRAINT jobs_progress_range CHECK (progress >= 0 AND progress <= 1),
  progress_message text,
  params           jsonb NOT NULL DEFAULT '{}'::jsonb,
  result           jsonb,
  error            jsonb,
  attempts         integer NOT NULL DEFAULT 0,
  max_attempts     integer NOT NULL DEFAULT 3 CONSTRAINT jobs_max_attempts_positive CHECK (max_attempts >= 1),
  -- SET NULL: a job outlives its owner's account as a record of what ran.
  owner_id         uuid REFERENCES users (id) ON DELETE SET NULL,
  request_id       text,
  -- One job per business event (e.g. the confirmation email of one order): a second enqueue
  -- with the same key is refused by the database, not by a check that could race.
  dedupe_key       text CONSTRAINT jobs_dedupe_key_key UNIQUE,
  -- NULL until the relay handed the job to the queue.
  enqueued_at      timestamptz,
  -- The embedded runner's retry backoff: not picked before this time.
  run_after        timestamptz NOT NULL DEFAULT now(),
  cancel_requested_at timestamptz,
  -- The last event's sequence number; events are numbered per job from 1.
  event_seq        integer NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_outbox_idx ON jobs (created_at) WHERE enqueued_at IS NULL;
CREATE INDEX jobs_pending_idx ON jobs (run_after) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_owner_idx ON jobs (owner_id, created_at, id);
CREATE INDEX jobs_created_at_idx ON jobs (created_at, id);
CREATE INDEX jobs_status_idx ON jobs (status, created_at, id);
CREATE INDEX jobs_type_idx ON jobs (type, created_at, id);
CREATE INDEX jobs_finished_at_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Every progress and status change, numbered per job, so a stream resumed with Last-Event-ID
-- replays exactly what it missed.
CREATE TABLE job_events (
  job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  seq        integer NOT NULL,
  kind       text NOT NULL CONSTRAINT job_events_kind_check CHECK (kind IN ('progress', 'status')),
  data       jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, seq)
);

-- Emails sent by the email job, one per business event: checked before sending and written
-- after, so a retried job does not send again.
CREATE TABLE email_deliveries (
  event_key  text PRIMARY KEY,
  message_id text NOT NULL,
  recipient  text NOT NULL,
  template   text NOT NULL,
  job_id     uuid REFERENCES jobs (id) ON DELETE SET NULL,
  sent_at    timestamptz NOT NULL DEFAULT now()
);
