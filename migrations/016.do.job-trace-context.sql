-- The W3C trace context (traceparent, tracestate) of the code that recorded a job, e.g. the
-- request that placed an order, so the job's run continues that trace in whichever process
-- runs it. NULL when the job was recorded outside a trace (tracing off, or a schedule).
-- No length checks: a caller's odd tracestate header must never fail the order it came with.
ALTER TABLE jobs ADD COLUMN traceparent text, ADD COLUMN tracestate text;
