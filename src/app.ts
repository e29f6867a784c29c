import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import websocket from '@fastify/websocket'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type RawServerDefault,
} from 'fastify'
import type { Redis } from 'ioredis'
import type { DestinationStream } from 'pino'
import { Counter, Registry } from 'prom-client'
import type { Config, TrustProxy } from './config.js'
import { type DatabaseHandle, inTransaction, openDatabase } from './db/client.js'
import { migrate } from './db/migrate.js'
import { timeQueries } from './db/query-timing.js'
import { type ApiKeyOwner, createApiKeyRepository } from './modules/api-keys/repository.js'
import { apiKeyRoutes } from './modules/api-keys/routes.js'
import { createApiKeyService } from './modules/api-keys/service.js'
import { createAuditRepository } from './modules/audit/repository.js'
import { auditRoutes } from './modules/audit/routes.js'
import { createAuditService } from './modules/audit/service.js'
import { createAccessTokens } from './modules/auth/access-tokens.js'
import { createAuthStateEvents } from './modules/auth/auth-state-events.js'
import { createLoginCodeRepository } from './modules/auth/login-codes.js'
import { limitPasswordHashing } from './modules/auth/passwords.js'
import { createRefreshTokenRepository } from './modules/auth/refresh-tokens.js'
import { authRoutes } from './modules/auth/routes.js'
import { createAuthService, type UserAuthState } from './modules/auth/service.js'
import { createCustomerRepository } from './modules/customers/repository.js'
import { customerRoutes } from './modules/customers/routes.js'
import { createCustomerService } from './modules/customers/service.js'
import { type DatasetJobDeps, registerDatasetJobs } from './modules/datasets/jobs.js'
import { createDatasetRepository } from './modules/datasets/repository.js'
import { datasetRoutes } from './modules/datasets/routes.js'
import { createRowStore } from './modules/datasets/row-store.js'
import { createDatasetService } from './modules/datasets/service.js'
import { queueOrderConfirmation, queueWelcome } from './modules/jobs/notifications.js'
import { jobRoutes } from './modules/jobs/routes.js'
import { createJobSystem, type Jobs } from './modules/jobs/system.js'
import { generationRoutes } from './modules/models/generation/routes.js'
import { imageRoutes } from './modules/models/images/routes.js'
import { kserveRoutes } from './modules/models/kserve/routes.js'
import { createDriftGauges } from './modules/models/monitoring/drift-gauges.js'
import { createPredictionLog } from './modules/models/monitoring/prediction-log.js'
import { createPredictionLogRepository } from './modules/models/monitoring/repository.js'
import { monitoringRoutes } from './modules/models/monitoring/routes.js'
import { createMonitoringService } from './modules/models/monitoring/service.js'
import { createModelRegistry, type ServingHooks } from './modules/models/registry.js'
import type { AllowedHosts } from './modules/models/remote/allowed-hosts.js'
import { createModelRepository } from './modules/models/repository.js'
import { modelRoutes } from './modules/models/routes.js'
import type { InferenceBackend } from './modules/models/runtime/backend.js'
import { createOnnxBackend } from './modules/models/runtime/onnx-backend.js'
import type { ManagedModelServer } from './modules/models/serving/model-server.js'
import { createModelServing } from './modules/models/serving/model-serving.js'
import { describeServedModels } from './modules/models/serving/openapi-models.js'
import {
  closeSockets,
  onSocketError,
  predictionSocketRoutes,
} from './modules/models/serving/prediction-socket.js'
import { predictionRoutes } from './modules/models/serving/routes.js'
import { modelStatsRoutes } from './modules/models/serving/stats-routes.js'
import { createLoginStateSealer } from './modules/oidc/login-state.js'
import { createProviderClient } from './modules/oidc/provider-client.js'
import { createIdentityRepository } from './modules/oidc/repository.js'
import { oidcRoutes } from './modules/oidc/routes.js'
import { createOidcService, type OidcService, type PrincipalState } from './modules/oidc/service.js'
import { createOrderRepository } from './modules/orders/repository.js'
import { orderRoutes } from './modules/orders/routes.js'
import type { Order } from './modules/orders/schemas.js'
import { createOrderService } from './modules/orders/service.js'
import { createProductRepository } from './modules/products/repository.js'
import { productRoutes } from './modules/products/routes.js'
import type { Product } from './modules/products/schemas.js'
import { createProductService } from './modules/products/service.js'
import { createUserRepository } from './modules/users/repository.js'
import { userRoutes } from './modules/users/routes.js'
import { createUserService } from './modules/users/service.js'
import { type Authenticate, auth, securitySchemes, webSocketProtocol } from './platform/auth.js'
import { conditionalGet } from './platform/conditional-get.js'
import { consoleRoutes } from './platform/console.js'
import { health, type ReadinessCheck } from './platform/health.js'
import { httpSecurity } from './platform/http-security.js'
import { idempotency } from './platform/idempotency.js'
import { lazyRequestLogger, loggerOptions, RequestLogController } from './platform/logging.js'
import { metrics } from './platform/metrics.js'
import { notFound } from './platform/not-found.js'
import { openapi } from './platform/openapi.js'
import { handleClientError, handleFrameworkError, problemHandler } from './platform/problem.js'
import { rateLimits } from './platform/rate-limit.js'
import {
  createReadCaches,
  type ReadCacheResult,
  type ResourceCache,
} from './platform/read-cache.js'
import { generateRequestId } from './platform/request-id.js'
import { lazySerializers } from './platform/serialization.js'
import { createServerTiming, type ServerTiming } from './platform/server-timing.js'
import {
  httpTracing,
  traceInference,
  traceQuery,
  traceRedis,
  tracingEnabled,
} from './platform/tracing.js'
import { closedQueryStrings, validatorCompiler } from './platform/validation.js'
import { type CredentialCache, createCredentialCache } from './shared/credential-cache.js'
import { projectPath } from './shared/project-files.js'

/** The models shipped with the code, registered on a first start. */
const SHIPPED_MODELS_DIR = projectPath('models/')

/** Logged rows one drift report reads at most: the newest of its window. */
const DRIFT_MAX_ROWS = 100_000

const { version } = JSON.parse(readFileSync(projectPath('package.json'), 'utf8'))

/** Infrastructure a caller may hand in instead of having it built from the config. */
export interface AppOverrides {
  database?: DatabaseHandle
  /** `null` forces no Redis even when REDIS_URL is set. */
  redis?: Redis | null
  /** Where log lines go (stdout by default); tests capture them here. */
  logStream?: DestinationStream
  /**
   * Resolves credentials to a caller in place of the built-in access tokens and API keys:
   * the identity edge, which a test may fake (the benchmark's auth-free baseline does). Code
   * only, never configuration, so no deployment can switch authentication off.
   */
  authenticate?: Authenticate
  /** Loads ONNX models; ONNX Runtime by default, a deterministic double in tests. */
  inference?: InferenceBackend
}

declare module 'fastify' {
  interface FastifyInstance {
    /** For the start-up message: whether an active admin exists. */
    hasActiveAdmin(): Promise<boolean>
    /** The job system: modules register their handlers here and enqueue through it. */
    jobs: Jobs
  }
}

export type App = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>

/**
 * Builds the whole service from its configuration: the one place where infrastructure,
 * platform plugins and domain modules are wired together. What it opens it also closes
 * (on `app.close()`); what the caller hands in stays the caller's to close.
 */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<App> {
  const app = Fastify({
    logger: loggerOptions(config, overrides.logStream),
    genReqId: generateRequestId,
    logController: new RequestLogController(),
    childLoggerFactory: lazyRequestLogger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Registering the docs (Swagger UI's files, ReDoc's 900 KB bundle) ran past Fastify's
    // 10 s default on a machine with a load average near 30; a plugin that truly hangs still
    // fails the start, after a minute.
    pluginTimeout: 60_000,
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    connectionTimeout: config.CONNECTION_TIMEOUT_MS,
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
    http: {
      // Node checks these deadlines only every connectionsCheckingInterval (30 s by default),
      // and a dribbled body runs on headersTimeout (60 s by default), not requestTimeout.
      headersTimeout: config.REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: Math.min(1000, config.REQUEST_TIMEOUT_MS / 4),
    },
    trustProxy: trustProxySetting(config.trustProxy),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    // Errors raised before routing answer problem+json like every other error.
    frameworkErrors: handleFrameworkError,
    clientErrorHandler: handleClientError,
    schemaController: { compilersFactory: { buildSerializer: lazySerializers() } },
  }).withTypeProvider<TypeBoxTypeProvider>() as App

  // First, so that every later hook and the handler run inside the request's span.
  if (tracingEnabled(config)) await app.register(httpTracing)
  app.setValidatorCompiler(validatorCompiler)
  // JSON is the only body this API reads; anything else answers 415.
  app.removeContentTypeParser('text/plain')
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })

  const database = overrides.database ?? (await openDatabase(databaseSettings(config)))
  if (!overrides.database) app.addHook('onClose', () => database.close())
  const redis =
    overrides.redis !== undefined
      ? overrides.redis
      : config.REDIS_URL
        ? // Loaded only when configured: ioredis is not needed in embedded mode, and importing
          // it was a measurable part of embedded start-up.
          (await import('./platform/redis.js')).connectRedis(
            redisSettings(config, config.REDIS_URL),
            app.log,
          )
        : null
  if (redis && overrides.redis === undefined)
    app.addHook('onClose', async () => void (await redis.quit()))
  if (redis && tracingEnabled(config)) traceRedis(redis)

  if (config.MIGRATE_ON_START) {
    const { applied } = await migrate(database)
    if (applied.length > 0) app.log.info({ applied }, 'database migrated')
  }

  limitPasswordHashing({
    concurrency: config.PASSWORD_HASH_CONCURRENCY,
    maxQueue: config.PASSWORD_HASH_QUEUE,
  })
  // Bearer requests read users' auth state from memory; changes drop it on every instance.
  const userStates = createCredentialCache<UserAuthState>({
    ttlMs: config.AUTH_CACHE_TTL_MS,
    ownerOf: (state) => state.id,
  })
  const keyOwners = createCredentialCache<ApiKeyOwner>({
    ttlMs: config.AUTH_CACHE_TTL_MS,
    ownerOf: (owner) => owner.userId,
  })
  const principals = createCredentialCache<PrincipalState>({
    ttlMs: config.AUTH_CACHE_TTL_MS,
    ownerOf: (principal) => principal.userId,
  })
  const forget = (userId: string) => {
    userStates.invalidateOwner(userId)
    keyOwners.invalidateOwner(userId)
    principals.invalidateOwner(userId)
  }
  const userChanges = createAuthStateEvents(redis, forget, app.log, config.REDIS_PREFIX)
  app.addHook('onClose', () => userChanges.close())
  const backend =
    overrides.inference ??
    createOnnxBackend({ intraOpNumThreads: config.INFERENCE_INTRA_OP_THREADS })
  const inference = tracingEnabled(config) ? traceInference(backend) : backend
  const metricsRegistry = new Registry()
  const timing = config.SERVER_TIMING ? createServerTiming() : null
  if (timing) timeQueries(database.db, timing.current)
  const readCaches = createReadCaches({
    ttlMs: config.READ_CACHE_TTL_MS,
    maxEntries: config.READ_CACHE_MAX_ENTRIES,
    redis,
    keyPrefix: `${config.REDIS_PREFIX}:read-cache`,
    log: app.log,
    onRead: readCacheObserver(metricsRegistry, timing),
  })
  app.addHook('onClose', () => readCaches.close())
  const modelRepository = createModelRepository(database.db)
  const predictionLogs = createPredictionLogRepository(database.db)
  const predictionLog = createPredictionLog({
    repository: predictionLogs,
    sampleRate: (model) => config.predictionLogSampling[model] ?? config.PREDICTION_LOG_SAMPLE_RATE,
    bufferMax: config.PREDICTION_LOG_BUFFER_MAX,
    flushIntervalMs: config.PREDICTION_LOG_FLUSH_INTERVAL_MS,
    metrics: metricsRegistry,
    log: app.log,
  })
  const serving = createModelServing({
    config,
    models: modelRepository,
    backend: inference,
    redis,
    metrics: metricsRegistry,
    log: app.log,
    onInference: timing?.addInference,
    predictionLog,
  })
  const monitoring = createMonitoringService({
    logs: predictionLogs,
    models: modelRepository,
    threshold: config.DRIFT_PSI_THRESHOLD,
    maxRows: DRIFT_MAX_ROWS,
  })
  const driftGauges = createDriftGauges({
    registry: metricsRegistry,
    models: () =>
      serving.server
        .activeServed()
        .filter((served) => served.card.reference)
        .map((served) => served.name),
    drift: monitoring.drift,
    intervalMs: config.DRIFT_REFRESH_INTERVAL_MS,
    windowMs: config.DRIFT_WINDOW_MS,
    log: app.log,
  })
  // onClose hooks run last-registered first: the server drains its predictions, then the
  // log writes them, then (registered earlier) the database closes.
  app.addHook('onClose', async () => {
    await driftGauges.close()
    await predictionLog.close()
  })
  app.addHook('onClose', () => serving.close())
  const jobs = createJobSystem({
    role: 'api',
    db: database.db,
    inTransaction: inTransaction(database.db),
    redis,
    settings: config,
    metrics: metricsRegistry,
    log: app.log,
  })
  // Before the database closes (onClose): running jobs finish or stop first.
  app.addHook('preClose', () => jobs.close())
  app.decorate('jobs', jobs)
  const caches = {
    orders: readCaches.resource<Order>('order'),
    products: readCaches.resource<Product>('product'),
  }
  const modules = createModules(
    config,
    database,
    inference,
    modelRepository,
    serving.hooks,
    serving.allowedHosts,
    caches,
    jobs,
    {
      userStates,
      keyOwners,
      principals,
      credentialsChanged: (userId) => {
        forget(userId)
        userChanges.publish(userId)
      },
    },
  )
  registerDatasetJobs(jobs.registry, datasetJobDeps(config, database, serving))
  if (config.ADMIN_EMAIL && config.ADMIN_PASSWORD) {
    const created = await modules.users.ensureAdmin({
      email: config.ADMIN_EMAIL,
      password: config.ADMIN_PASSWORD,
      full_name: 'Administrator',
    })
    if (created) app.log.info({ email: config.ADMIN_EMAIL }, 'first admin created')
  }
  app.decorate('hasActiveAdmin', modules.users.hasActiveAdmin)
  if (config.MODELS_REGISTER_SHIPPED) {
    const { registered } = await modules.models.registerShippedModels(SHIPPED_MODELS_DIR)
    if (registered.length > 0) app.log.info({ registered }, 'shipped models registered')
  }
  // Sessions load on their own threads while this one registers the routes; awaited before
  // the app is ready, so the first request never waits for a model to load.
  const modelsLoaded = serving.server.start()
  // Awaited below; until then a failure must not count as an unhandled rejection.
  modelsLoaded.catch(() => {})

  // First, so that every later hook's queries (authentication's included) count as the request's.
  if (timing) await app.register(timing.plugin)
  await app.register(problemHandler)
  // Before every onRequest hook that can refuse a handshake (rate limits, auth): its own
  // hook marks upgrade requests, so a refused one has its socket closed after the answer.
  await app.register(websocket, {
    options: {
      maxPayload: config.WS_MAX_MESSAGE_BYTES,
      // Select a subprotocol offered, never a credential a browser offered beside it.
      handleProtocols: (offered) => webSocketProtocol(offered),
    },
    preClose: () => closeSockets(app.websocketServer.clients),
    errorHandler: onSocketError,
  })
  await app.register(closedQueryStrings)
  await app.register(notFound)
  await app.register(httpSecurity, { config })
  // After compression, whose hook it follows on each route; before the docs it adds to.
  await app.register(conditionalGet)
  // Before auth, which counts failed authentications against the client address.
  await app.register(rateLimits, {
    max: config.RATE_LIMIT_MAX,
    windowMs: config.RATE_LIMIT_WINDOW_MS,
    predict: { max: config.PREDICT_RATE_LIMIT_MAX, windowMs: config.PREDICT_RATE_LIMIT_WINDOW_MS },
    redis,
    redisPrefix: config.REDIS_PREFIX,
    syncIntervalMs: config.RATE_LIMIT_SYNC_INTERVAL_MS,
  })
  // Before the docs: the auth plugin adds each route's security requirement to its schema.
  const schemes = securitySchemes(modules.oidc?.providers()[0]?.login_url)
  await app.register(auth, {
    authenticate: overrides.authenticate ?? modules.auth.authenticate,
    schemes,
  })
  await app.register(idempotency, {
    db: database.db,
    ttlSeconds: config.IDEMPOTENCY_TTL_S,
    leaseMs: config.IDEMPOTENCY_LEASE_MS,
  })
  if (config.DOCS_ENABLED) {
    await app.register(openapi, {
      version,
      schemes,
      extend: (document) => describeServedModels(document, serving.server.activeServed()),
    })
  }
  // The web console's static files, under a policy of their own (see platform/console.ts).
  await app.register(consoleRoutes, { prefix: '/console', https: config.TLS_TERMINATED })
  await app.register(metrics, { poolStats: database.poolStats, registry: metricsRegistry })

  const checks: Record<string, ReadinessCheck> = { database: database.ping }
  if (redis) checks.redis = async () => void (await redis.ping())
  if (jobs.queueCheck) checks.queue = jobs.queueCheck
  await app.register(health, {
    // A model whose active version failed to load is named, e.g. `model:iris`.
    checks: () => ({
      ...checks,
      ...modelChecks(serving.server),
      ...upstreamChecks(serving.upstream.down()),
    }),
  })

  await app.register(authRoutes, {
    prefix: '/v1/auth',
    auth: modules.auth,
    users: modules.users,
    registrationEnabled: config.REGISTRATION_ENABLED,
    loginLimit: { max: config.LOGIN_RATE_LIMIT_MAX, windowMs: config.LOGIN_RATE_LIMIT_WINDOW_MS },
  })
  await app.register(oidcRoutes, {
    prefix: '/v1/auth/oidc',
    oidc: modules.oidc,
    secureCookies: config.PUBLIC_URL?.startsWith('https:') ?? false,
  })
  await app.register(userRoutes, { prefix: '/v1/users', users: modules.users })
  await app.register(apiKeyRoutes, { prefix: '/v1/api-keys', apiKeys: modules.apiKeys })
  await app.register(productRoutes, { prefix: '/v1/products', products: modules.products })
  await app.register(orderRoutes, { prefix: '/v1/orders', orders: modules.orders })
  await app.register(customerRoutes, { prefix: '/v1/customers', customers: modules.customers })
  await app.register(auditRoutes, { prefix: '/v1/audit-events', audit: modules.audit })
  await app.register(datasetRoutes, {
    prefix: '/v1/datasets',
    datasets: modules.datasets,
    maxBytes: config.DATASET_MAX_BYTES,
    batchMaxFiles: config.DATASET_BATCH_MAX_FILES,
    spoolDir: join(config.DATA_DIR, 'uploads', 'spool'),
  })
  await app.register(modelRoutes, {
    prefix: '/v1/models',
    registry: modules.models,
    maxModelBytes: config.MODEL_MAX_BYTES,
  })
  await app.register(monitoringRoutes, { prefix: '/v1/models', monitoring })
  await app.register(modelStatsRoutes, {
    prefix: '/v1/models',
    stats: serving.stats,
    registry: modules.models,
  })
  await app.register(predictionSocketRoutes, {
    prefix: '/v1',
    predictions: serving.predictions,
    limits: {
      messagesPerSecond: config.WS_MESSAGES_PER_SECOND,
      maxInFlight: config.WS_MAX_IN_FLIGHT,
      pingIntervalMs: config.WS_PING_INTERVAL_MS,
      idleTimeoutMs: config.WS_IDLE_TIMEOUT_MS,
    },
  })
  await app.register(predictionRoutes, {
    prefix: '/v1',
    predictions: serving.predictions,
    batchMax: config.PREDICT_BATCH_MAX,
    streamBatchMax: config.PREDICT_STREAM_BATCH_MAX,
    streamChunkRows: config.INFERENCE_MAX_BATCH_SIZE,
  })
  await app.register(imageRoutes, {
    prefix: '/v1',
    images: serving.images,
    defaultModel: config.DEFAULT_IMAGE_MODEL,
    maxBytes: config.IMAGE_MAX_BYTES,
    maxPixels: config.IMAGE_MAX_PIXELS,
  })
  await app.register(generationRoutes, {
    prefix: '/v1',
    generation: serving.generation,
    maxTokens: config.GENERATE_MAX_TOKENS,
  })
  await app.register(jobRoutes, { prefix: '/v1/jobs', jobs: jobs.service })
  await app.register(kserveRoutes, {
    prefix: '/v2',
    server: serving.server,
    version,
    // Like /ready: a server that cannot reach its database is not ready to serve models.
    ready: async () =>
      !app.isShuttingDown() &&
      serving.server.allActiveReady() &&
      (await database.ping().then(
        () => true,
        () => false,
      )),
    versionsOf: async (name) => (await modules.models.get(name)).versions.map((v) => v.version),
  })

  await modelsLoaded
  // Once every module has registered its handlers: only then may jobs run.
  app.addHook('onReady', () => jobs.start())
  await app.ready()
  return app
}

/** Counts every cached read; with Server-Timing on, also notes it on the request. */
function readCacheObserver(registry: Registry, timing: ServerTiming | null) {
  const reads = new Counter({
    name: 'read_cache_requests_total',
    help: 'Single-resource reads by resource and result (hit, miss, or stale: the cached copy was outdated).',
    labelNames: ['resource', 'result'] as const,
    registers: [registry],
  })
  // One child per label pair, looked up once: a read pays an increment, not a label hash.
  const children = new Map<string, { inc(): void }>()
  const count = (resource: string, result: ReadCacheResult) => {
    const key = `${resource} ${result}`
    let child = children.get(key)
    if (!child) {
      child = reads.labels({ resource, result })
      children.set(key, child)
    }
    child.inc()
  }
  if (!timing) return count
  return (resource: string, result: ReadCacheResult) => {
    count(resource, result)
    timing.noteCache(result)
  }
}

function modelChecks(server: ManagedModelServer): Record<string, ReadinessCheck> {
  const checks: Record<string, ReadinessCheck> = {}
  for (const state of server.states()) {
    if (state.active && state.state === 'failed') {
      checks[`model:${state.name}`] = () => Promise.reject(new Error(state.error))
    }
  }
  return checks
}

/** A remote backend whose breaker is open is named, e.g. `upstream:churn@1.0.0`. */
function upstreamChecks(down: string[]): Record<string, ReadinessCheck> {
  return Object.fromEntries(
    down.map((name) => [`upstream:${name}`, () => Promise.reject(new Error('breaker open'))]),
  )
}

/** A hop count trusts exactly that many proxies in front of the service, never more. */
function trustProxySetting(trust: TrustProxy) {
  return typeof trust === 'number' ? (_address: string, hop: number) => hop < trust : trust
}

/** Repositories and services, each given only what it needs. */
function createModules(
  config: Config,
  database: DatabaseHandle,
  inference: InferenceBackend,
  modelRepository: ReturnType<typeof createModelRepository>,
  serving: ServingHooks,
  allowedHosts: AllowedHosts,
  caches: { orders: ResourceCache<Order>; products: ResourceCache<Product> },
  jobs: Pick<Jobs, 'emailEnabled' | 'wake'>,
  auth: {
    userStates: CredentialCache<UserAuthState>
    keyOwners: CredentialCache<ApiKeyOwner>
    principals: CredentialCache<PrincipalState>
    credentialsChanged: (userId: string) => void
  },
) {
  const { db } = database
  const transaction = inTransaction(db)
  const userRepository = createUserRepository(db)
  const loginCodes = createLoginCodeRepository(db)
  const oidc = createOidc(config, {
    users: userRepository,
    loginCodes,
    inTransaction: transaction,
    identities: createIdentityRepository(db),
    principals: auth.principals,
    credentialsChanged: auth.credentialsChanged,
  })
  const apiKeys = createApiKeyService({
    apiKeys: createApiKeyRepository(db),
    inTransaction: transaction,
    owners: auth.keyOwners,
    keyRevoked: auth.credentialsChanged,
  })
  return {
    apiKeys,
    oidc,
    users: createUserService({
      users: userRepository,
      inTransaction: transaction,
      credentialsChanged: auth.credentialsChanged,
      // Emails are queued only when they can be sent (SMTP_URL set).
      signedUp: jobs.emailEnabled ? queueWelcome : undefined,
    }),
    auth: createAuthService({
      users: userRepository,
      refreshTokens: createRefreshTokenRepository(db),
      accessTokens: createAccessTokens({
        secret: config.JWT_SECRET,
        previousSecrets: config.jwtPreviousSecrets,
        issuer: config.JWT_ISSUER,
        audience: config.JWT_AUDIENCE,
        ttlSeconds: config.ACCESS_TOKEN_TTL_S,
        clockToleranceSeconds: config.JWT_CLOCK_TOLERANCE_S,
      }),
      apiKeys,
      inTransaction: transaction,
      userStates: auth.userStates,
      refreshTokenTtlSeconds: config.REFRESH_TOKEN_TTL_S,
      loginCodes,
      passwordLoginEnabled: config.PASSWORD_LOGIN_ENABLED,
      providerTokens: oidc?.authenticateServiceToken,
    }),
    products: createProductService({
      products: createProductRepository(db),
      inTransaction: transaction,
      cache: caches.products,
    }),
    orders: createOrderService({
      orders: createOrderRepository(db),
      inTransaction: transaction,
      maxTotalQuantity: config.ORDER_MAX_TOTAL_QUANTITY,
      exactCountMax: config.ORDER_COUNT_EXACT_MAX,
      cache: caches.orders,
      productCache: caches.products,
      placed: jobs.emailEnabled ? queueOrderConfirmation : undefined,
    }),
    customers: createCustomerService({
      customers: createCustomerRepository(db),
      inTransaction: transaction,
      orderCache: caches.orders,
    }),
    audit: createAuditService({ events: createAuditRepository(db) }),
    datasets: createDatasetService({
      datasets: createDatasetRepository(db),
      rows: createRowStore(database),
      inTransaction: transaction,
      limits: datasetLimits(config),
      jobEnqueued: () => jobs.wake(),
    }),
    models: createModelRegistry({
      models: modelRepository,
      inTransaction: transaction,
      backend: inference,
      serving,
      allowedHosts,
    }),
  }
}

/** Single sign-on, when providers are configured (PUBLIC_URL is then set, config checks it). */
function createOidc(
  config: Config,
  deps: Pick<
    Parameters<typeof createOidcService>[0],
    'users' | 'loginCodes' | 'inTransaction' | 'identities' | 'principals' | 'credentialsChanged'
  >,
): OidcService | undefined {
  if (config.oidcProviders.length === 0 || !config.PUBLIC_URL) return undefined
  const clientOptions = {
    jwksCooldownMs: config.OIDC_JWKS_COOLDOWN_MS,
    httpTimeoutMs: config.OIDC_HTTP_TIMEOUT_MS,
    clockToleranceSeconds: config.JWT_CLOCK_TOLERANCE_S,
  }
  // The service's own front ends: the console's page, and Swagger UI's redirect page so
  // that "Authorize" works from /docs.
  const ownRedirects = [`${config.PUBLIC_URL}/console/`]
  if (config.DOCS_ENABLED)
    ownRedirects.push(`${config.PUBLIC_URL}/docs/static/oauth2-redirect.html`)
  return createOidcService({
    ...deps,
    clients: config.oidcProviders.map((provider) => createProviderClient(provider, clientOptions)),
    sealer: createLoginStateSealer(config.JWT_SECRET),
    publicUrl: config.PUBLIC_URL,
    clientRedirectUris: [...config.oidcClientRedirectUris, ...ownRedirects],
  })
}

/** Upload limits, and where uploads wait for their import job (DATA_DIR, shared by workers). */
export function datasetLimits(config: Config) {
  return {
    inlineMaxBytes: config.DATASET_INLINE_MAX_BYTES,
    maxColumns: config.DATASET_MAX_COLUMNS,
    maxLineBytes: config.DATASET_MAX_LINE_BYTES,
    uploadDir: join(config.DATA_DIR, 'uploads'),
  }
}

/**
 * What the dataset job handlers need; the worker process builds the same from its own
 * database and model serving, so both run one handler code.
 */
export function datasetJobDeps(
  config: Config,
  database: DatabaseHandle,
  serving: Pick<ReturnType<typeof createModelServing>, 'predictions' | 'server'>,
): DatasetJobDeps {
  const users = createUserRepository(database.db)
  return {
    datasets: createDatasetRepository(database.db),
    rows: createRowStore(database),
    inTransaction: inTransaction(database.db),
    limits: datasetLimits(config),
    exportDir: join(config.DATA_DIR, 'exports'),
    roleOf: async (userId) => (await users.findById(userId))?.role,
    predictions: {
      predictBatch: (model, instances, options) =>
        serving.predictions.predictBatch(model, instances, options),
      card: async (model, options) => (await serving.server.resolve(model, options)).card,
    },
    predictChunkRows: config.PREDICT_BATCH_MAX,
  }
}

export function databaseSettings(config: Config) {
  return {
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.DATABASE_POOL_MAX,
    connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
    sharedBuffersMb: config.EMBEDDED_SHARED_BUFFERS_MB,
    traceQuery: tracingEnabled(config) ? traceQuery : undefined,
  }
}

export function redisSettings(config: Config, url: string) {
  return {
    url,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    breakerResetMs: config.REDIS_BREAKER_RESET_MS,
    connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
  }
}
