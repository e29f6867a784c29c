ALTER TABLE jobs DROP COLUMN tracestate, DROP COLUMN traceparent;
