import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { Registry } from 'prom-client'
import type { Config } from '../../config.js'
import type { Database, InTransaction } from '../../db/client.js'
import { traceJobDelivery, untraced } from '../../platform/tracing.js'
import { type JobType, QUEUE_NAME } from './contract.js'
import { createEmailHandler, createSmtpMailer, type Mailer } from './email.js'
import { createJobEventBus, type JobEventBus } from './events.js'
import { createJobExecutor } from './execute.js'
import { createJobHandlerRegistry, type JobHandlerRegistry } from './handlers.js'
import { createHousekeepingHandler, scheduleHousekeeping } from './housekeeping.js'
import { createJobMetrics, registerQueueDepth } from './metrics.js'
import type { QueueSettings } from './queue.js'
import type { QueueWorker, QueueWorkerDeps, QueueWorkerSettings } from './queue-worker.js'
import { createOutboxRelay } from './relay.js'
import {
  createJobRepository,
  type JobRepository,
  type JobRow,
  type NewJob,
  type RelayedJob,
} from './repository.js'
import { createEmbeddedRunner } from './runner.js'
import { createJobService, type JobService } from './service.js'

/** The settings the job system reads; all from the validated config. */
export type JobSettings = Pick<
  Config,
  | 'REDIS_URL'
  | 'REDIS_COMMAND_TIMEOUT_MS'
  | 'QUEUE_PREFIX'
  | 'WORKER_CONCURRENCY'
  | 'WORKER_SHUTDOWN_GRACE_MS'
  | 'WORKER_LOCK_MS'
  | 'JOB_RETRY_BASE_MS'
  | 'JOB_RETENTION_DAYS'
  | 'JOBS_POLL_INTERVAL_MS'
  | 'HOUSEKEEPING_INTERVAL_MS'
  | 'SMTP_URL'
  | 'SMTP_FROM'
  | 'SMTP_TIMEOUT_MS'
>

export interface JobSystemDeps {
  /**
   * `api`: serves the jobs API; runs the jobs itself in embedded mode (no REDIS_URL), else
   * only relays them to the queue. `worker`: runs the queue's jobs (server mode only).
   */
  role: 'api' | 'worker'
  db: Database
  inTransaction: InTransaction
  /** The process's Redis client (pub/sub of job events); null in embedded mode. */
  redis: Redis | null
  settings: JobSettings
  metrics: Registry
  log: FastifyBaseLogger
  /** Sends emails; built from SMTP_URL by default, a test's double otherwise. */
  mailer?: Mailer | null
}

/** What other modules see of the job system (`app.jobs`). */
export interface Jobs {
  /** Handlers are registered here by their module, before the app is ready. */
  registry: JobHandlerRegistry
  /** Enqueues a job in its own transaction; use `enqueueJob(tx, ...)` inside a transaction. */
  enqueue<T extends JobType>(job: NewJob<T>): Promise<JobRow>
  /** Relays (or runs) committed jobs now instead of at the next poll. */
  wake(): void
  /** Whether emails go out (SMTP_URL set): producers enqueue no email job otherwise. */
  emailEnabled: boolean
}

export interface JobSystem extends Jobs {
  repository: JobRepository
  service: JobService
  bus: JobEventBus
  /** Readiness of the queue (server mode); null when there is none. */
  queueCheck: (() => Promise<void>) | null
  /** Starts relaying, running and scheduling; call once every handler is registered. */
  start(): Promise<void>
  /** Stops taking work, lets running jobs finish (within the grace period) and closes. */
  close(): Promise<void>
  /** True while the worker takes jobs (worker role). */
  isRunning(): boolean
}

/**
 * Wires the job system for one process: the registry, the repository, the event bus, and —
 * by mode and role — the embedded runner, the outbox relay with its BullMQ producer (opened
 * on first need), or the BullMQ worker. One code path per role, shared by the API (app.ts)
 * and `npm run worker`.
 */
export function createJobSystem(deps: JobSystemDeps): JobSystem {
  const { role, db, inTransaction, redis, settings, log } = deps
  const serverMode = Boolean(settings.REDIS_URL)
  if (role === 'worker' && !serverMode) throw new Error('the worker needs REDIS_URL')
  const registry = createJobHandlerRegistry()
  const repository = createJobRepository(db)
  const bus = createJobEventBus(redis, `${settings.QUEUE_PREFIX}:job-events`, log)
  const runsJobs = role === 'worker' || !serverMode

  const executor = runsJobs
    ? createJobExecutor({
        jobs: repository,
        registry,
        bus,
        metrics: createJobMetrics(deps.metrics),
        log,
        retryBaseMs: settings.JOB_RETRY_BASE_MS,
      })
    : null
  const runner =
    executor && !serverMode
      ? createEmbeddedRunner({
          jobs: repository,
          executor,
          registry,
          log,
          concurrency: settings.WORKER_CONCURRENCY,
          pollIntervalMs: settings.JOBS_POLL_INTERVAL_MS,
          shutdownGraceMs: settings.WORKER_SHUTDOWN_GRACE_MS,
        })
      : null
  const queueSettings = serverMode
    ? {
        redisUrl: settings.REDIS_URL as string,
        prefix: settings.QUEUE_PREFIX,
        retryBaseMs: settings.JOB_RETRY_BASE_MS,
      }
    : null
  const queue = queueSettings ? openQueueOnDemand(queueSettings, log) : null
  // The worker loads BullMQ at start for its own side, so its producer opens at once too.
  if (queue && role === 'worker') queue.then((opened) => opened.producer()).catch(() => {})
  const relay = queue
    ? createOutboxRelay({
        jobs: repository,
        deliver: traceJobDelivery<RelayedJob>(
          async (rows) => (await (await queue).producer()).deliver(rows),
          QUEUE_NAME,
        ),
        log,
        intervalMs: settings.JOBS_POLL_INTERVAL_MS,
      })
    : null
  const worker =
    executor && queueSettings && role === 'worker'
      ? openQueueWorker(
          {
            redisUrl: queueSettings.redisUrl,
            prefix: queueSettings.prefix,
            concurrency: settings.WORKER_CONCURRENCY,
            lockDurationMs: settings.WORKER_LOCK_MS,
            shutdownGraceMs: settings.WORKER_SHUTDOWN_GRACE_MS,
          },
          {
            executor,
            jobs: repository,
            log,
            announce: (id, seq) => bus.publish({ job_id: id, seq }),
          },
        )
      : null
  /** The worker once `start()` has it, for the synchronous `isRunning()`. */
  let runningWorker: QueueWorker | null = null
  registerQueueDepth(
    deps.metrics,
    () => repository.countByStatus(),
    queue ? async () => (await queue).counts() : undefined,
  )

  // The request that woke them is not the owner of the pass: it relays or runs others' jobs.
  const wake = () =>
    untraced(() => {
      runner?.wake()
      void relay?.wake()
    })
  const mailer =
    deps.mailer !== undefined
      ? deps.mailer
      : settings.SMTP_URL
        ? createSmtpMailer(settings.SMTP_URL, { timeoutMs: settings.SMTP_TIMEOUT_MS })
        : null
  if (mailer)
    registry.register('email', createEmailHandler({ db, mailer, from: settings.SMTP_FROM }), {
      maxAttempts: 5,
    })
  registry.register(
    'housekeeping',
    createHousekeepingHandler({
      db,
      jobs: repository,
      registry,
      retentionDays: settings.JOB_RETENTION_DAYS,
    }),
  )
  const housekeeping =
    settings.HOUSEKEEPING_INTERVAL_MS > 0
      ? scheduleHousekeeping({
          db,
          intervalMs: settings.HOUSEKEEPING_INTERVAL_MS,
          log,
          enqueued: wake,
        })
      : null

  const service = createJobService({
    jobs: repository,
    inTransaction,
    registry,
    bus,
    queued: wake,
    eventsPollMs: 2000,
  })

  let started = false
  return {
    registry,
    repository,
    service,
    bus,
    emailEnabled: mailer !== null,
    enqueue: (job) => service.enqueue(job),
    wake,
    // The queue's connection waits for Redis without a command timeout (BullMQ needs it so);
    // readiness must not, or a frozen Redis would hold /ready for the whole check timeout.
    queueCheck: queue
      ? () =>
          withinMs(
            queue.then((opened) => opened.ping()),
            settings.REDIS_COMMAND_TIMEOUT_MS,
          )
      : null,
    async start() {
      started = true
      runningWorker = await worker
      await runner?.start()
      relay?.start()
      runningWorker?.start()
    },
    isRunning: () => runningWorker?.isRunning() ?? (started && !worker),
    async close() {
      housekeeping?.stop()
      await relay?.stop()
      await (await opened(worker))?.close()
      await runner?.stop()
      executor?.close()
      await (await opened(queue))?.close()
      await bus.close()
      mailer?.close()
    },
  }
}

/*
 * The queue's modules serve server mode only, so they are imported when server mode wires
 * the job system, never by an embedded process: ioredis with the queue's connection at once
 * (queue-on-demand.ts), BullMQ (with msgpackr, luxon, cron-parser: ~5 MB of heap and a third
 * of a server-mode start's module loading) by the worker at start and by the API's relay
 * with its first delivery. The promises are marked as handled here; each use awaits them and
 * sees a failed import there.
 */
function openQueueOnDemand(settings: QueueSettings, log: FastifyBaseLogger) {
  const opening = import('./queue-on-demand.js').then(({ createQueueOnDemand }) =>
    createQueueOnDemand(settings, log),
  )
  opening.catch(() => {})
  return opening
}

function openQueueWorker(settings: QueueWorkerSettings, deps: QueueWorkerDeps) {
  const opening = import('./queue-worker.js').then(({ createQueueWorker }) =>
    createQueueWorker(settings, deps),
  )
  opening.catch(() => {})
  return opening
}

/**
 * A queue part whose opening failed has nothing to close, and its failure was reported where
 * it was first awaited; shutdown must still close everything else.
 */
function opened<T>(opening: Promise<T> | null): Promise<T | null> {
  return opening ? opening.catch(() => null) : Promise.resolve(null)
}

function withinMs(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([work, late]).finally(() => clearTimeout(timer))
}
