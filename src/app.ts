import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import websocket from '@fastify/websocket'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type RawServerDefault,
} from 'fastify'
import type { Redis } from 'ioredis'
import type { DestinationStream } from 'pino'
import { Registry } from 'prom-client'
import type { Config, TrustProxy } from './config.js'
import { type DatabaseHandle, inTransaction, openDatabase } from './db/client.js'
import { migrate } from './db/migrate.js'
import { type ApiKeyOwner, createApiKeyRepository } from './modules/api-keys/repository.js'
import { apiKeyRoutes } from './modules/api-keys/routes.js'
import { createApiKeyService } from './modules/api-keys/service.js'
import { createAuditRepository } from './modules/audit/repository.js'
import { auditRoutes } from './modules/audit/routes.js'
import { createAuditService } from './modules/audit/service.js'
import { createAccessTokens } from './modules/auth/access-tokens.js'
import { createAuthStateEvents } from './modules/auth/auth-state-events.js'
import { limitPasswordHashing } from './modules/auth/passwords.js'
import { createRefreshTokenRepository } from './modules/auth/refresh-tokens.js'
import { authRoutes } from './modules/auth/routes.js'
import { createAuthService, type UserAuthState } from './modules/auth/service.js'
import { createCustomerRepository } from './modules/customers/repository.js'
import { customerRoutes } from './modules/customers/routes.js'
import { createCustomerService } from './modules/customers/service.js'
import { queueOrderConfirmation, queueWelcome } from './modules/jobs/notifications.js'
import { jobRoutes, WS_CLOSE } from './modules/jobs/routes.js'
import { createJobSystem, type Jobs } from './modules/jobs/system.js'
import { kserveRoutes } from './modules/models/kserve/routes.js'
import { createModelRegistry, type ServingHooks } from './modules/models/registry.js'
import { createModelRepository } from './modules/models/repository.js'
import { modelRoutes } from './modules/models/routes.js'
import type { InferenceBackend } from './modules/models/runtime/backend.js'
import { createOnnxBackend } from './modules/models/runtime/onnx-backend.js'
import type { ManagedModelServer } from './modules/models/serving/model-server.js'
import { createModelServing } from './modules/models/serving/model-serving.js'
import { describeServedModels } from './modules/models/serving/openapi-models.js'
import { predictionRoutes } from './modules/models/serving/routes.js'
import { createOrderRepository } from './modules/orders/repository.js'
import { orderRoutes } from './modules/orders/routes.js'
import { createOrderService } from './modules/orders/service.js'
import { createProductRepository } from './modules/products/repository.js'
import { productRoutes } from './modules/products/routes.js'
import { createProductService } from './modules/products/service.js'
import { createUserRepository } from './modules/users/repository.js'
import { userRoutes } from './modules/users/routes.js'
import { createUserService } from './modules/users/service.js'
import { type Authenticate, auth, webSocketProtocol } from './platform/auth.js'
import { health, type ReadinessCheck } from './platform/health.js'
import { httpSecurity } from './platform/http-security.js'
import { idempotency } from './platform/idempotency.js'
import { loggerOptions, RequestLogController } from './platform/logging.js'
import { metrics } from './platform/metrics.js'
import { notFound } from './platform/not-found.js'
import { openapi } from './platform/openapi.js'
import { handleClientError, handleFrameworkError, problemHandler } from './platform/problem.js'
import { rateLimits } from './platform/rate-limit.js'
import { connectRedis } from './platform/redis.js'
import { generateRequestId } from './platform/request-id.js'
import { serverTiming } from './platform/server-timing.js'
import {
  httpTracing,
  traceInference,
  traceQuery,
  traceRedis,
  tracingEnabled,
} from './platform/tracing.js'
import { closedQueryStrings, validatorCompiler } from './platform/validation.js'
import { type CredentialCache, createCredentialCache } from './shared/credential-cache.js'

/** The models shipped with the code, registered on a first start. */
const SHIPPED_MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url))

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))

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
    bodyLimit: config.BODY_LIMIT_BYTES,
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
        ? connectRedis(redisSettings(config, config.REDIS_URL), app.log)
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
  const forget = (userId: string) => {
    userStates.invalidateOwner(userId)
    keyOwners.invalidateOwner(userId)
  }
  const userChanges = createAuthStateEvents(redis, forget, app.log)
  app.addHook('onClose', () => userChanges.close())
  const backend =
    overrides.inference ??
    createOnnxBackend({ intraOpNumThreads: config.INFERENCE_INTRA_OP_THREADS })
  const inference = tracingEnabled(config) ? traceInference(backend) : backend
  const metricsRegistry = new Registry()
  const modelRepository = createModelRepository(database.db)
  const serving = createModelServing({
    config,
    models: modelRepository,
    backend: inference,
    redis,
    metrics: metricsRegistry,
    log: app.log,
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
  const modules = createModules(config, database, inference, modelRepository, serving.hooks, jobs, {
    userStates,
    keyOwners,
    credentialsChanged: (userId) => {
      forget(userId)
      userChanges.publish(userId)
    },
  })
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
  // Before the app is ready, so the first request never waits for a model to load.
  await serving.server.start()

  await app.register(problemHandler)
  await app.register(closedQueryStrings)
  await app.register(notFound)
  await app.register(httpSecurity, { config })
  // Before auth: its onRequest hook marks upgrade requests, so that a handshake refused by
  // auth (401) still has its socket closed after the answer instead of left open.
  await app.register(websocket, {
    options: {
      maxPayload: 64 * 1024,
      // A browser cannot set headers on a WebSocket: it sends its token as a subprotocol
      // (`bearer.<token>`), which must never be echoed back; the other one it offers is.
      handleProtocols: (protocols) => webSocketProtocol(protocols),
    },
    preClose: (done) => {
      for (const client of app.websocketServer.clients) client.close(WS_CLOSE.goingAway)
      done()
    },
  })
  // Before auth, which counts failed authentications against the client address.
  await app.register(rateLimits, {
    max: config.RATE_LIMIT_MAX,
    windowMs: config.RATE_LIMIT_WINDOW_MS,
    predict: { max: config.PREDICT_RATE_LIMIT_MAX, windowMs: config.PREDICT_RATE_LIMIT_WINDOW_MS },
    redis,
    syncIntervalMs: config.RATE_LIMIT_SYNC_INTERVAL_MS,
  })
  // Before the docs: the auth plugin adds each route's security requirement to its schema.
  await app.register(auth, { authenticate: overrides.authenticate ?? modules.auth.authenticate })
  await app.register(idempotency, {
    db: database.db,
    ttlSeconds: config.IDEMPOTENCY_TTL_S,
    leaseMs: config.IDEMPOTENCY_LEASE_MS,
  })
  if (config.DOCS_ENABLED) {
    await app.register(openapi, {
      version,
      extend: (document) => describeServedModels(document, serving.server.activeServed()),
    })
  }
  await app.register(metrics, { poolStats: database.poolStats, registry: metricsRegistry })
  if (config.SERVER_TIMING) await app.register(serverTiming)

  const checks: Record<string, ReadinessCheck> = { database: database.ping }
  if (redis) checks.redis = async () => void (await redis.ping())
  if (jobs.queueCheck) checks.queue = jobs.queueCheck
  await app.register(health, {
    // A model whose active version failed to load is named, e.g. `model:iris`.
    checks: () => ({ ...checks, ...modelChecks(serving.server) }),
  })

  await app.register(authRoutes, {
    prefix: '/v1/auth',
    auth: modules.auth,
    users: modules.users,
    registrationEnabled: config.REGISTRATION_ENABLED,
    loginLimit: { max: config.LOGIN_RATE_LIMIT_MAX, windowMs: config.LOGIN_RATE_LIMIT_WINDOW_MS },
  })
  await app.register(userRoutes, { prefix: '/v1/users', users: modules.users })
  await app.register(apiKeyRoutes, { prefix: '/v1/api-keys', apiKeys: modules.apiKeys })
  await app.register(productRoutes, { prefix: '/v1/products', products: modules.products })
  await app.register(orderRoutes, { prefix: '/v1/orders', orders: modules.orders })
  await app.register(customerRoutes, { prefix: '/v1/customers', customers: modules.customers })
  await app.register(auditRoutes, { prefix: '/v1/audit-events', audit: modules.audit })
  await app.register(modelRoutes, {
    prefix: '/v1/models',
    registry: modules.models,
    maxModelBytes: config.MODEL_MAX_BYTES,
  })
  await app.register(predictionRoutes, {
    prefix: '/v1',
    predictions: serving.predictions,
    batchMax: config.PREDICT_BATCH_MAX,
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

  // Once every module has registered its handlers: only then may jobs run.
  app.addHook('onReady', () => jobs.start())
  await app.ready()
  return app
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
  jobs: Pick<Jobs, 'emailEnabled'>,
  auth: {
    userStates: CredentialCache<UserAuthState>
    keyOwners: CredentialCache<ApiKeyOwner>
    credentialsChanged: (userId: string) => void
  },
) {
  const { db } = database
  const transaction = inTransaction(db)
  const userRepository = createUserRepository(db)
  const apiKeys = createApiKeyService({
    apiKeys: createApiKeyRepository(db),
    inTransaction: transaction,
    owners: auth.keyOwners,
    keyRevoked: auth.credentialsChanged,
  })
  return {
    apiKeys,
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
    }),
    products: createProductService({
      products: createProductRepository(db),
      inTransaction: transaction,
    }),
    orders: createOrderService({
      orders: createOrderRepository(db),
      inTransaction: transaction,
      maxTotalQuantity: config.ORDER_MAX_TOTAL_QUANTITY,
      exactCountMax: config.ORDER_COUNT_EXACT_MAX,
      placed: jobs.emailEnabled ? queueOrderConfirmation : undefined,
    }),
    customers: createCustomerService({
      customers: createCustomerRepository(db),
      inTransaction: transaction,
    }),
    audit: createAuditService({ events: createAuditRepository(db) }),
    models: createModelRegistry({
      models: modelRepository,
      inTransaction: transaction,
      backend: inference,
      serving,
    }),
  }
}

export function databaseSettings(config: Config) {
  return {
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.DATABASE_POOL_MAX,
    connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
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
