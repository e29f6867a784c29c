import { describe, expect, it } from 'vitest'
import { SERVICES_MODE } from './helpers.js'
import { runProcess } from './processes.js'

/**
 * Packages a default start has no use for: the OpenTelemetry SDK (loaded by startTracing only
 * when OTEL_EXPORTER_OTLP_ENDPOINT is set), the OpenAI client and sharp (for the features that
 * need them, on first use), the job queue of server mode (BullMQ and its Redis client, loaded
 * only when REDIS_URL is set), nodemailer (with the first email sent), undici (with the first
 * call to a remote model), the dataset file packages (the Parquet reader and writer and the
 * JSON array parser with the first file of their format, the COPY stream with the first
 * server-mode import), and development tools. Each costs resident memory and start time in
 * every process that loads it.
 */
const NOT_AT_START = [
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

// The default start is embedded mode whatever the suite's mode; the services run would only
// repeat this one.
describe.skipIf(SERVICES_MODE)('packages loaded by a default start', { timeout: 120_000 }, () => {
  it('when the app starts with its defaults, then none of the optional heavy packages is loaded', async () => {
    const run = await runProcess(process.execPath, [
      '--import',
      'tsx',
      'test/fixtures/packages-at-start.ts',
    ])
    expect(run.code, run.stderr).toBe(0)
    const loaded = JSON.parse(run.stdout) as string[]
    // The hooks saw the app's own dependencies load, so an absence below means something.
    expect(loaded).toEqual(expect.arrayContaining(['fastify', 'drizzle-orm', '@opentelemetry/api']))
    expect(loaded.filter((name) => NOT_AT_START.includes(name))).toEqual([])
  })
})
