/**
 * Packages a default start has no use for: the OpenTelemetry SDK (loaded by startTracing only
 * when OTEL_EXPORTER_OTLP_ENDPOINT is set), the OpenAI client and sharp (for the features that
 * need them, on first use), the job queue of server mode (ioredis only when REDIS_URL is
 * set, BullMQ with the relay's first delivery), nodemailer (with the first email sent),
 * undici (with the first call to a remote model), the dataset file packages (the Parquet
 * reader and writer and the JSON array parser with the first file of their format, the COPY
 * stream with the first server-mode import), and development tools. Each costs resident memory and start time in
 * every process that loads it.
 */
export const NOT_AT_START = [
  '@opentelemetry/sdk-trace-base',
  '@opentelemetry/exporter-trace-otlp-http',
  '@opentelemetry/resources',
  '@opentelemetry/context-async-hooks',
  '@opentelemetry/core',
  'openai',
  'sharp',
  'bullmq',
  'ioredis',
  'nodemailer',
  'undici',
  'hyparquet',
  'hyparquet-writer',
  'stream-json',
  'pg-copy-streams',
  '@faker-js/faker',
  'pino-pretty',
]
