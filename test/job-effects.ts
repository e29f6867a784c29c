import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'drizzle-orm'
import type { Executor } from '../src/db/client.js'
import type { JobHandler, JobHandlerRegistry } from '../src/modules/jobs/handlers.js'
import { PermanentJobError } from '../src/modules/jobs/handlers.js'

// Free of vitest imports: the worker process started by the tests loads this too.

/** A job type only tests register: its effect is a row a test can count. */
declare module '../src/modules/jobs/contract.js' {
  interface JobTypes {
    test_effect: {
      params: {
        /** The effect's key: one row in test_job_effects however often the job runs. */
        key: string
        /** Progress checkpoints, each after `step_ms`. */
        steps?: number
        step_ms?: number
        /** Attempts that throw before succeeding. */
        fail_times?: number
        /** Always fails with a permanent error. */
        poison?: boolean
      }
      result: { key: string; attempt: number }
    }
  }
}

const TABLES = [
  `CREATE TABLE IF NOT EXISTS test_job_runs (
    job_id uuid NOT NULL, attempt integer NOT NULL, pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  `CREATE TABLE IF NOT EXISTS test_job_effects (
    key text PRIMARY KEY, job_id uuid NOT NULL, written_at timestamptz NOT NULL DEFAULT now())`,
]

/**
 * The test job: records each run, walks its checkpoints, then writes its effect keyed by
 * the params' key, idempotently (a re-run after a crash writes nothing more).
 */
export function testEffectHandler(db: Executor): JobHandler<'test_effect'> {
  return async ({ job, progress }) => {
    const { key, steps = 0, step_ms = 0, fail_times = 0, poison } = job.params
    await db.execute(
      sql`INSERT INTO test_job_runs (job_id, attempt, pid) VALUES (${job.id}, ${job.attempt}, ${process.pid})`,
    )
    if (poison) throw new PermanentJobError('POISON', 'this job can never succeed')
    if (job.attempt <= fail_times) throw new Error(`attempt ${job.attempt} fails on purpose`)
    for (let step = 1; step <= steps; step++) {
      await sleep(step_ms)
      await progress(step / (steps + 1), `step ${step} of ${steps}`)
    }
    await db.execute(
      sql`INSERT INTO test_job_effects (key, job_id) VALUES (${key}, ${job.id}) ON CONFLICT (key) DO NOTHING`,
    )
    return { key, attempt: job.attempt }
  }
}

export async function createTestJobTables(db: Executor) {
  for (const statement of TABLES) await db.execute(sql.raw(statement))
}

export function registerTestJobs(registry: JobHandlerRegistry, db: Executor) {
  registry.register('test_effect', testEffectHandler(db), { maxAttempts: 3 })
}
