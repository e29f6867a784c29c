import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { Registry } from 'prom-client'
import type { Config } from '../../../config.js'
import { traceModel, tracingEnabled } from '../../../platform/tracing.js'
import { createGenerationService } from '../generation/service.js'
import { createImagePredictionService } from '../images/service.js'
import type { PredictionLog } from '../monitoring/prediction-log.js'
import type { ServingHooks } from '../registry.js'
import { parseAllowedHosts } from '../remote/allowed-hosts.js'
import { createRemoteModel } from '../remote/remote-model.js'
import { createUpstreamClient } from '../remote/upstream.js'
import type { ModelRepository } from '../repository.js'
import type { InferenceBackend } from '../runtime/backend.js'
import { createServingMetrics } from './metrics.js'
import { createModelEvents } from './model-events.js'
import { createModelServer } from './model-server.js'
import { createPredictionCache } from './prediction-cache.js'
import { createPredictionService } from './prediction-service.js'
import { createModelStats } from './stats.js'

/** The recent view the stats route answers: thirty windows of ten seconds, five minutes. */
const STATS_WINDOW_MS = 10_000
const STATS_WINDOWS = 30

export interface ModelServingDeps {
  config: Config
  models: ModelRepository
  backend: InferenceBackend
  /** Server mode: activations broadcast to other instances, the cache shared. */
  redis: Redis | null
  metrics: Registry
  log: FastifyBaseLogger
  /** Told how long each inference took (Server-Timing); unset when that is off. */
  onInference?: (ms: number) => void
  /** Where served predictions are recorded. */
  predictionLog?: Pick<PredictionLog, 'record' | 'recordAll'>
}

/**
 * The serving side of the models module, wired from the configuration: the model server,
 * the activation broadcast, the prediction cache and service, and the hooks through which
 * the registry tells the server about activations and deletions.
 */
export function createModelServing({
  config,
  models,
  backend,
  redis,
  metrics,
  log,
  onInference,
  predictionLog,
}: ModelServingDeps) {
  // The gauge reads the server's count when scraped, after both exist.
  const stats = createModelStats({ windowMs: STATS_WINDOW_MS, windows: STATS_WINDOWS })
  const servingMetrics = createServingMetrics(metrics, () => server.loadedCount(), stats)
  const allowedHosts = parseAllowedHosts(config.REMOTE_BACKEND_ALLOWED_HOSTS)
  const upstream = createUpstreamClient({
    allowedHosts,
    connectTimeoutMs: config.REMOTE_BACKEND_CONNECT_TIMEOUT_MS,
    timeoutMs: config.REMOTE_BACKEND_TIMEOUT_MS,
    retries: config.REMOTE_BACKEND_RETRIES,
    retryBaseMs: config.REMOTE_BACKEND_RETRY_BASE_MS,
    maxResponseBytes: config.REMOTE_BACKEND_MAX_RESPONSE_BYTES,
    connections: config.REMOTE_BACKEND_CONNECTIONS,
    breakerResetMs: config.REMOTE_BACKEND_BREAKER_RESET_MS,
    breakerErrorPercent: config.REMOTE_BACKEND_BREAKER_ERROR_PERCENT,
    breakerMinCalls: config.REMOTE_BACKEND_BREAKER_MIN_CALLS,
    metrics,
    log,
  })
  const server = createModelServer({
    loadRemote: ({ name, version, card }) => {
      const model = createRemoteModel({ name, version, card, upstream })
      return tracingEnabled(config) ? traceModel(model, `${name}@${version}`, 'kserve-v2') : model
    },
    backend,
    source: {
      activeVersions: () => models.activeVersions(),
      findServable: (name, version) => models.findServable(name, version),
      activeVersionOf: async (name) => (await models.findByName(name))?.activeVersion,
      activeVersionNames: () => models.activeVersionNames(),
    },
    syncIntervalMs: config.MODELS_SYNC_INTERVAL_MS,
    maxLoaded: config.MODELS_MAX_LOADED,
    batching: (name) =>
      config.modelBatching[name] ?? {
        maxBatchSize: config.INFERENCE_MAX_BATCH_SIZE,
        maxWaitMs: config.INFERENCE_MAX_WAIT_MS,
      },
    onBatch: servingMetrics.batch,
    maxQueuedRows: config.PREDICT_QUEUE_MAX,
    onRejected: servingMetrics.rejected,
    log,
  })
  // Activations reach every instance; each loads the new version before switching to it.
  const events = createModelEvents(redis, server, log, config.REDIS_PREFIX)

  const hooks: ServingHooks = {
    async prepare(name, version) {
      await server.resolve(name, { version })
    },
    async activated(name, version) {
      await server.activate(name, version)
      events.publish({ event: 'activated', name, version })
    },
    async removed(name, version) {
      await server.forget(name, version)
      events.publish({ event: 'removed', name, version })
    },
  }

  const predictions = createPredictionService({
    server,
    cache: createPredictionCache({
      redis,
      ttlMs: config.PREDICTION_CACHE_TTL_MS,
      maxEntries: config.PREDICTION_CACHE_MAX_ENTRIES,
      prefix: `${config.REDIS_PREFIX}:predict:`,
      logger: log,
    }),
    metrics: servingMetrics,
    batchMax: config.PREDICT_BATCH_MAX,
    onInference,
    predictionLog,
  })

  const images = createImagePredictionService({
    server,
    metrics: servingMetrics,
    limits: { maxPixels: config.IMAGE_MAX_PIXELS },
    onInference,
    predictionLog,
  })

  const generation = createGenerationService({
    server,
    upstream,
    maxTokens: config.GENERATE_MAX_TOKENS,
  })

  return {
    server,
    hooks,
    predictions,
    images,
    generation,
    stats,
    upstream,
    allowedHosts,
    async close() {
      await events.close()
      await server.close()
      await upstream.close()
    },
  }
}
