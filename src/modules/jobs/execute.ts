import type { FastifyBaseLogger } from 'fastify'
import type { JobRow } from '../../db/schema/index.js'
import { traceJobRun, traceLogFields } from '../../platform/tracing.js'
import type { JobType } from './contract.js'
import type { JobEventBus } from './events.js'
import {
  JobCancelledError,
  type JobContext,
  type JobHandlerRegistry,
  JobInterruptedError,
  PermanentJobError,
} from './handlers.js'
import type { JobMetrics } from './metrics.js'
import type { JobRepository } from './repository.js'

/** How one delivery of a job ended, for the queue that delivered it. */
export type RunOutcome =
  | { outcome: 'succeeded' | 'failed' | 'cancelled' | 'skipped' | 'interrupted' }
  | { outcome: 'retry'; delayMs: number; error: Error }

export interface JobExecutorDeps {
  jobs: Pick<
    JobRepository,
    'start' | 'progress' | 'succeed' | 'fail' | 'retryLater' | 'cancelled' | 'findById'
  >
  registry: JobHandlerRegistry
  bus: JobEventBus
  metrics: JobMetrics
  log: FastifyBaseLogger
  /** The first retry's delay; each further one doubles it. */
  retryBaseMs: number
}

/**
 * Runs one delivery of a job, whichever queue delivered it: takes the row (or skips a job
 * that already ended, as a redelivery after the end must), runs the handler, and records the
 * outcome with its event. The handlers are shared by the embedded runner and the worker.
 */
export function createJobExecutor(deps: JobExecutorDeps) {
  const { jobs, registry, bus, metrics, log, retryBaseMs } = deps
  const running = new Map<string, AbortController>()

  const unsubscribe = bus.subscribeAll((notice) => {
    if ('cancel' in notice) running.get(notice.job_id)?.abort(new JobCancelledError())
  })

  const announce = (row: JobRow | null) => {
    if (row) bus.publish({ job_id: row.id, seq: row.eventSeq })
  }

  async function run(id: string): Promise<RunOutcome> {
    const row = await jobs.start(id)
    if (!row) {
      // Ended or gone; or cancelled while it waited or while a run that died had it.
      const current = await jobs.findById(id)
      if (current?.cancelRequestedAt && !current.finishedAt) {
        announce(await jobs.cancelled(id))
      }
      return { outcome: 'skipped' }
    }
    return execute(row)
  }

  /**
   * Runs a job that `start` (or the embedded runner's pick) has just taken, in the trace of
   * the code that recorded it.
   */
  function execute(row: JobRow): Promise<RunOutcome> {
    return traceJobRun(row, () => executeTaken(row))
  }

  async function executeTaken(row: JobRow): Promise<RunOutcome> {
    const id = row.id
    announce(row)
    const type = row.type as JobType
    const startedAt = performance.now()
    const done = (outcome: string) =>
      metrics.finished(type, outcome, (performance.now() - startedAt) / 1000)
    const controller = new AbortController()
    running.set(id, controller)
    const jobLog = log.child({
      job_id: id,
      job_type: type,
      attempt: row.attempts,
      ...traceLogFields(),
    })
    try {
      const registered = registry.get(type)
      if (!registered) throw new PermanentJobError('UNKNOWN_JOB_TYPE', `no handler for ${type}`)
      const context: JobContext<typeof type> = {
        job: {
          id,
          type,
          params: row.params as never,
          owner_id: row.ownerId,
          attempt: row.attempts,
          request_id: row.requestId,
        },
        signal: controller.signal,
        log: jobLog,
        async progress(fraction, message) {
          const clamped = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0))
          const { cancelRequested, row: changed } = await jobs.progress(
            id,
            clamped,
            message ?? null,
          )
          announce(changed)
          if (cancelRequested) throw new JobCancelledError()
          if (controller.signal.aborted) throw controller.signal.reason
        },
      }
      const result = await registered.handler(context as never)
      announce(await jobs.succeed(id, result ?? null))
      done('succeeded')
      return { outcome: 'succeeded' }
    } catch (error) {
      const reason = controller.signal.reason
      const cause = reason instanceof JobInterruptedError ? reason : (error as Error)
      return await settleFailure(row, cause, jobLog, done)
    } finally {
      running.delete(id)
    }
  }

  async function settleFailure(
    row: JobRow,
    error: Error,
    jobLog: FastifyBaseLogger,
    done: (outcome: string) => void,
  ): Promise<RunOutcome> {
    if (error instanceof JobInterruptedError) {
      // Not the job's fault: it stays `running` and runs again (after a restart embedded,
      // once its lock expires in server mode), as after a crash.
      jobLog.warn('job interrupted by shutdown; it will run again')
      done('interrupted')
      return { outcome: 'interrupted' }
    }
    if (error instanceof JobCancelledError) {
      announce(await jobs.cancelled(row.id))
      done('cancelled')
      return { outcome: 'cancelled' }
    }
    const code = error instanceof PermanentJobError ? error.code : 'JOB_FAILED'
    const recorded = { code, message: error.message }
    if (error instanceof PermanentJobError || row.attempts >= row.maxAttempts) {
      jobLog.warn({ err: error }, 'job failed')
      announce(await jobs.fail(row.id, recorded))
      done('failed')
      return { outcome: 'failed' }
    }
    const delayMs = retryBaseMs * 2 ** (row.attempts - 1)
    jobLog.info({ err: error, delay_ms: delayMs }, 'job attempt failed; retrying')
    announce(await jobs.retryLater(row.id, recorded, delayMs))
    done('retried')
    return { outcome: 'retry', delayMs, error }
  }

  return {
    run,
    execute,
    /** Aborts every running handler's signal (shutdown past its grace period). */
    abortAll() {
      for (const controller of running.values()) controller.abort(new JobInterruptedError())
    },
    activeCount: () => running.size,
    close() {
      unsubscribe()
    },
  }
}

export type JobExecutor = ReturnType<typeof createJobExecutor>
