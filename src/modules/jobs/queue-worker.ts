import { UnrecoverableError, Worker } from 'bullmq'
import type { FastifyBaseLogger } from 'fastify'
import { QUEUE_NAME } from './contract.js'
import type { JobExecutor } from './execute.js'
import { queueConnection } from './queue-connection.js'
import type { JobRepository } from './repository.js'

export interface QueueWorkerSettings {
  redisUrl: string
  prefix: string
  concurrency: number
  /**
   * How long a job's lock lasts without renewal: a worker that dies (SIGKILL, lost host)
   * has its job taken over as stalled after about this long.
   */
  lockDurationMs: number
  /** How long `close()` lets running jobs finish before aborting them. */
  shutdownGraceMs: number
}

export interface QueueWorkerDeps {
  executor: Pick<JobExecutor, 'run' | 'abortAll' | 'activeCount'>
  jobs: Pick<JobRepository, 'fail' | 'findById'>
  log: FastifyBaseLogger
  announce: (jobId: string, seq: number) => void
}

/**
 * A BullMQ worker over the shared executor. BullMQ owns the delivery (concurrency, retries
 * with exponential backoff, stalled-job recovery); the jobs table owns the record, and the
 * executor decides from it whether a delivery runs, retries or ends the job.
 */
export function createQueueWorker(settings: QueueWorkerSettings, deps: QueueWorkerDeps) {
  const { executor, jobs, log } = deps
  const connection = queueConnection(settings.redisUrl)
  const worker = new Worker(
    QUEUE_NAME,
    async (job) => {
      const id = (job.data as { job_id: string }).job_id
      const result = await executor.run(id)
      if (result.outcome === 'retry') throw result.error
      if (result.outcome === 'interrupted') throw new Error('interrupted by shutdown')
      if (result.outcome === 'failed') {
        // Recorded as failed already: BullMQ must not spend further attempts on it.
        throw new UnrecoverableError('the job failed')
      }
      return result.outcome
    },
    {
      connection,
      prefix: settings.prefix,
      concurrency: settings.concurrency,
      lockDuration: settings.lockDurationMs,
      stalledInterval: Math.max(1000, Math.floor(settings.lockDurationMs / 2)),
      // A job whose worker died twice is presumably what kills it: it then fails.
      maxStalledCount: 2,
      autorun: false,
    },
  )
  worker.on('error', (error) => log.warn({ err: error }, 'job worker error'))
  // BullMQ gives up on a job without our processor's say when it stalled too often or ran
  // out of attempts: the row must not stay `running` or `queued` for ever.
  worker.on('failed', (job, error) => {
    if (!job) return
    const id = (job.data as { job_id: string }).job_id
    const exhausted = job.attemptsMade >= (job.opts.attempts ?? 1) || /stalled/i.test(error.message)
    if (!exhausted && !(error instanceof UnrecoverableError)) return
    void jobs
      .fail(id, { code: 'JOB_FAILED', message: error.message })
      .then((row) => row && deps.announce(row.id, row.eventSeq))
      .catch((failure: unknown) =>
        log.warn({ err: failure, job_id: id }, 'could not record failure'),
      )
  })

  return {
    worker,
    start() {
      void worker.run().catch((error: unknown) => log.error({ err: error }, 'job worker stopped'))
    },
    isRunning: () => worker.isRunning(),
    /**
     * Stops taking jobs and lets the running ones finish within the grace period; past it,
     * their signals abort and the worker closes without waiting. A job cut short this way
     * keeps its lock until it expires and then runs again elsewhere, as after a crash.
     */
    async close() {
      const graceful = worker.close()
      const inTime = await Promise.race([
        graceful.then(() => true),
        new Promise<false>((resolve) =>
          setTimeout(resolve, settings.shutdownGraceMs, false).unref(),
        ),
      ])
      if (!inTime) {
        log.warn({ running: executor.activeCount() }, 'grace period over; aborting running jobs')
        executor.abortAll()
        await worker.close(true)
      }
      connection.disconnect()
    },
  }
}

export type QueueWorker = ReturnType<typeof createQueueWorker>
