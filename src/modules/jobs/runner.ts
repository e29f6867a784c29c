import type { FastifyBaseLogger } from 'fastify'
import type { JobExecutor } from './execute.js'
import type { JobHandlerRegistry } from './handlers.js'
import type { JobRepository } from './repository.js'

export interface EmbeddedRunnerDeps {
  jobs: Pick<JobRepository, 'startNextDue' | 'requeueInterrupted' | 'findById'>
  executor: Pick<JobExecutor, 'execute' | 'abortAll'>
  registry: JobHandlerRegistry
  log: FastifyBaseLogger
  concurrency: number
  pollIntervalMs: number
  /** How long `stop()` lets running jobs finish before aborting them. */
  shutdownGraceMs: number
}

/**
 * The embedded mode's queue: the jobs table itself. Up to `concurrency` jobs run at once
 * in this process; a retry waits in the table (`run_after`), so it survives a restart too.
 * One process owns an embedded database (its data directory is locked), so a job found
 * `running` at start was interrupted by the last stop and runs again.
 */
export function createEmbeddedRunner(deps: EmbeddedRunnerDeps) {
  const { jobs, executor, registry, log, concurrency, pollIntervalMs, shutdownGraceMs } = deps
  const active = new Set<Promise<void>>()
  let timer: NodeJS.Timeout | undefined
  let stopping = false
  let filling = false

  async function fill() {
    if (filling || stopping) return
    filling = true
    try {
      while (!stopping && active.size < concurrency) {
        const row = await jobs.startNextDue(registry.types())
        if (!row) break
        const task = executor
          .execute(row)
          .then(() => undefined)
          .catch((error: unknown) => log.error({ err: error, job_id: row.id }, 'job run failed'))
          .finally(() => {
            active.delete(task)
            void fill()
          })
        active.add(task)
      }
    } catch (error) {
      log.warn({ err: error }, 'could not pick the next job')
    } finally {
      filling = false
    }
  }

  return {
    async start() {
      const requeued = await jobs.requeueInterrupted()
      if (requeued > 0) log.info({ jobs: requeued }, 'interrupted jobs queued again')
      timer = setInterval(() => void fill(), pollIntervalMs)
      timer.unref()
      void fill()
    },
    /** Looks for work now rather than at the next poll (after an enqueue that committed). */
    wake() {
      void fill()
    },
    async stop() {
      stopping = true
      clearInterval(timer)
      if (active.size === 0) return
      const all = Promise.allSettled([...active])
      const graceful = await Promise.race([
        all.then(() => true),
        new Promise<false>((resolve) => setTimeout(resolve, shutdownGraceMs, false).unref()),
      ])
      if (!graceful) {
        executor.abortAll()
        await all
      }
    },
  }
}
