import { describe, expect, it } from 'vitest'
import { createPrivateTestDatabase, SERVICES_MODE } from './helpers.js'
import { runProcess } from './processes.js'

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

/** The npm packages a start of the app (in a process of its own) loaded. */
async function packagesLoadedByStart(
  args: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<string[]> {
  const run = await runProcess(
    process.execPath,
    ['--import', 'tsx', 'test/fixtures/packages-at-start.ts', ...args],
    { env },
  )
  expect(run.code, run.stderr).toBe(0)
  return JSON.parse(run.stdout) as string[]
}

// The default start is embedded mode whatever the suite's mode; the services run would only
// repeat this one.
describe.skipIf(SERVICES_MODE)('packages loaded by a default start', { timeout: 120_000 }, () => {
  it('when the app starts with its defaults, then none of the optional heavy packages is loaded', async () => {
    const loaded = await packagesLoadedByStart()
    // The hooks saw the app's own dependencies load, so an absence below means something.
    expect(loaded).toEqual(expect.arrayContaining(['fastify', 'drizzle-orm', '@opentelemetry/api']))
    expect(loaded.filter((name) => NOT_AT_START.includes(name))).toEqual([])
  })
})

describe.runIf(SERVICES_MODE)(
  'packages loaded by a server-mode start',
  { timeout: 120_000 },
  () => {
    it('when the app starts with DATABASE_URL set, then PGlite is not loaded', async () => {
      const loaded = await packagesLoadedByStart(['server-mode'])
      // The hooks saw server mode's own driver load, so the absence below means something.
      expect(loaded).toEqual(expect.arrayContaining(['pg', 'drizzle-orm']))
      expect(loaded).not.toContain('@electric-sql/pglite')
    })

    // The app's relay hands committed jobs to BullMQ; with none waiting, nothing needs it. A
    // database of its own, so that no other file's job waits there to be relayed at start.
    it('when the app starts with DATABASE_URL and REDIS_URL set and no job to relay, then BullMQ is not loaded', async () => {
      const database = await createPrivateTestDatabase()
      try {
        const loaded = await packagesLoadedByStart(['server-mode', 'with-redis'], {
          ...process.env,
          DATABASE_URL: database.url,
        })
        // The start used Redis (and answered /ready, whose checks ping the queue's
        // connection), so the absence below means something.
        expect(loaded).toEqual(expect.arrayContaining(['pg', 'ioredis']))
        expect(loaded).not.toContain('bullmq')
      } finally {
        await database.close()
      }
    })
  },
)
