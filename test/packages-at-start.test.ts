import { describe, expect, it } from 'vitest'
import { createPrivateTestDatabase, SERVICES_MODE } from './helpers.js'
import { NOT_AT_START } from './not-at-start.js'
import { runProcess } from './processes.js'

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
