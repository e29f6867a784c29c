import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'drizzle-orm'
import type { DatabaseHandle, Executor } from '../src/db/client.js'
import type { JobHandlerRegistry } from '../src/modules/jobs/handlers.js'
import { type RunningWorker, startWorker } from '../src/worker-app.js'
import {
  buildTestApp,
  createPrivateTestDatabase,
  SERVICES_MODE,
  type TestApp,
  testConfig,
  unique,
} from './helpers.js'
import { createTestJobTables, registerTestJobs } from './job-effects.js'

export async function countRows(db: Executor, table: string, where = sql`true`): Promise<number> {
  const result = (await db.execute(
    sql`SELECT count(*)::int AS n FROM ${sql.identifier(table)} WHERE ${where}`,
  )) as unknown as { rows: { n: number }[] }
  return Number(result.rows[0]?.n ?? 0)
}

/** Polls `check` until it returns a value (not undefined/false), or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

/** A database of its own in services mode (the relay would take other files' jobs). */
export interface JobsDatabase {
  /** Its URL in services mode (for a worker to open); none embedded. */
  url?: string
  database: DatabaseHandle
  drop(): Promise<void>
}

export async function createJobsDatabase(): Promise<JobsDatabase> {
  const database = await createPrivateTestDatabase()
  return { url: database.url, database, drop: () => database.close() }
}

export interface JobsTestApp extends TestApp {
  /** The env both the app and any worker use (DATABASE_URL, QUEUE_PREFIX, ...). */
  env: Record<string, string>
  /** In-process worker (services mode); null in embedded mode, where the app runs jobs. */
  worker: RunningWorker | null
}

/**
 * An app whose jobs run: by itself in embedded mode; with a worker (the same code as
 * `npm run worker`, in this process) in services mode. The test job type is registered.
 */
export async function buildJobsTestApp(
  env: Record<string, string> = {},
  {
    worker: withWorker = true,
    register,
    database: shared,
  }: {
    worker?: boolean
    /** A database to share with other apps (e.g. across a restart); it stays open on close. */
    database?: JobsDatabase
    /** Further handlers, registered in the app and the worker alike. */
    register?: (registry: JobHandlerRegistry) => void
  } = {},
): Promise<JobsTestApp> {
  const own = shared ?? (await createJobsDatabase())
  const fullEnv: Record<string, string> = {
    JOBS_POLL_INTERVAL_MS: '50',
    JOB_RETRY_BASE_MS: '50',
    WORKER_SHUTDOWN_GRACE_MS: '5000',
    WORKER_LOCK_MS: '2000',
    HOUSEKEEPING_INTERVAL_MS: '0',
    WORKER_PORT: '0',
    QUEUE_PREFIX: `test-jobs-${unique()}`,
    ...(own.url ? { DATABASE_URL: own.url } : {}),
    ...env,
  }
  const t = await buildTestApp(fullEnv, { database: own.database })
  await createTestJobTables(t.database.db)
  const registerAll = (registry: JobHandlerRegistry) => {
    registerTestJobs(registry, t.database.db)
    register?.(registry)
  }
  registerAll(t.app.jobs.registry)
  const worker =
    SERVICES_MODE && withWorker
      ? await startWorker(testConfig({ LOG_LEVEL: 'silent', ...fullEnv }), {
          register: registerAll,
        })
      : null
  const app: JobsTestApp = {
    ...t,
    env: fullEnv,
    worker,
    async close() {
      await app.worker?.close()
      await t.close()
      if (!shared) await own.drop()
    },
  }
  return app
}

export interface SseEvent {
  id: number
  event: string
  data: Record<string, unknown>
}

/** The events of a text/event-stream body (comment lines skipped). */
export function parseSse(body: string): SseEvent[] {
  return body
    .split('\n\n')
    .map((block) => block.split('\n').filter((line) => line !== '' && !line.startsWith(':')))
    .filter((lines) => lines.length > 0)
    .map((lines) => {
      const field = (name: string) =>
        lines.find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2) ?? ''
      return { id: Number(field('id')), event: field('event'), data: JSON.parse(field('data')) }
    })
}

export { createTestJobTables, registerTestJobs, testEffectHandler } from './job-effects.js'
