import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import type { DestinationStream } from 'pino'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { databaseSettings, datasetJobDeps, redisSettings } from './app.js'
import type { Config } from './config.js'
import { inTransaction, openDatabase } from './db/client.js'
import { registerDatasetJobs } from './modules/datasets/jobs.js'
import type { JobHandlerRegistry } from './modules/jobs/handlers.js'
import { checkEvictionPolicy } from './modules/jobs/queue.js'
import { queueConnection } from './modules/jobs/queue-connection.js'
import { createJobSystem } from './modules/jobs/system.js'
import { createModelRepository } from './modules/models/repository.js'
import { createOnnxBackend } from './modules/models/runtime/onnx-backend.js'
import { createModelServing } from './modules/models/serving/model-serving.js'
import { loggerOptions } from './platform/logging.js'
import { connectRedis } from './platform/redis.js'

export interface WorkerOverrides {
  logStream?: DestinationStream
  /**
   * Registers further handlers beside the modules' own, e.g. a test's job type; the
   * worker runs whatever the registry holds.
   */
  register?: (registry: JobHandlerRegistry) => void
}

export interface RunningWorker {
  /** The address of /health and /metrics. */
  address: AddressInfo
  log: FastifyBaseLogger
  /** Stops taking jobs, lets running ones finish within WORKER_SHUTDOWN_GRACE_MS, closes. */
  close(): Promise<void>
}

/**
 * The job worker of server mode: runs the queue's jobs with the same handlers as the API's
 * embedded runner, relays the outbox too, and serves /health and /metrics on WORKER_PORT.
 */
export async function startWorker(
  config: Config,
  overrides: WorkerOverrides = {},
): Promise<RunningWorker> {
  if (!config.REDIS_URL || !config.DATABASE_URL) {
    throw new Error('the worker runs in server mode only: set DATABASE_URL and REDIS_URL')
  }
  const http = Fastify({ logger: loggerOptions(config, overrides.logStream) })
  const log = http.log
  const database = await openDatabase(databaseSettings(config))
  const redis = connectRedis(redisSettings(config, config.REDIS_URL), log)
  const metrics = new Registry()
  collectDefaultMetrics({ register: metrics })
  const jobs = createJobSystem({
    role: 'worker',
    db: database.db,
    inTransaction: inTransaction(database.db),
    redis,
    settings: config,
    metrics,
    log,
  })
  // Batch predictions run here, so the worker serves models too: loaded on a job's first
  // chunk, not at start, as most workers never run one.
  const serving = createModelServing({
    config,
    models: createModelRepository(database.db),
    backend: createOnnxBackend({ intraOpNumThreads: config.INFERENCE_INTRA_OP_THREADS }),
    redis,
    metrics,
    log,
  })
  // Modules register their job handlers here, as they do in app.ts.
  registerDatasetJobs(jobs.registry, datasetJobDeps(config, database, serving))
  overrides.register?.(jobs.registry)

  let stopping = false
  http.get('/health', async (_request, reply) => {
    const ok = !stopping && jobs.isRunning()
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'stopping' })
  })
  http.get('/metrics', async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.metrics()),
  )

  // On a connection that waits for Redis, unlike the app client that fails fast.
  const probe = queueConnection(config.REDIS_URL)
  await checkEvictionPolicy(probe, log).finally(() => probe.disconnect())
  await jobs.start()
  await http.listen({ host: config.HOST, port: config.WORKER_PORT })
  log.info(
    { concurrency: config.WORKER_CONCURRENCY, handlers: jobs.registry.types() },
    'worker started',
  )
  return {
    address: http.server.address() as AddressInfo,
    log,
    async close() {
      stopping = true
      await jobs.close()
      await serving.close()
      await http.close()
      await redis.quit().catch(() => {})
      await database.close()
    },
  }
}
