import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type RawServerDefault,
} from 'fastify'
import { Redis } from 'ioredis'
import type { DestinationStream } from 'pino'
import type { Config, TrustProxy } from './config.js'
import { type DatabaseHandle, openDatabase } from './db/client.js'
import { migrate } from './db/migrate.js'
import { createProductRepository } from './modules/products/repository.js'
import { productRoutes } from './modules/products/routes.js'
import { createProductService } from './modules/products/service.js'
import { health, type ReadinessCheck } from './platform/health.js'
import { httpSecurity } from './platform/http-security.js'
import { loggerOptions, RequestLogController } from './platform/logging.js'
import { metrics } from './platform/metrics.js'
import { notFound } from './platform/not-found.js'
import { openapi } from './platform/openapi.js'
import { problemHandler } from './platform/problem.js'
import { generateRequestId } from './platform/request-id.js'
import { validatorCompiler } from './platform/validation.js'

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))

/** Infrastructure a caller may hand in instead of having it built from the config. */
export interface AppOverrides {
  database?: DatabaseHandle
  /** `null` forces no Redis even when REDIS_URL is set. */
  redis?: Redis | null
  /** Where log lines go (stdout by default); tests capture them here. */
  logStream?: DestinationStream
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
    trustProxy: trustProxySetting(config.trustProxy),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>() as App

  app.setValidatorCompiler(validatorCompiler)
  // JSON is the only body this API reads; anything else answers 415.
  app.removeContentTypeParser('text/plain')
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })

  const database = overrides.database ?? (await openDatabase(databaseSettings(config)))
  if (!overrides.database) app.addHook('onClose', () => database.close())
  const redis = overrides.redis !== undefined ? overrides.redis : connectRedis(config)
  if (redis && overrides.redis === undefined)
    app.addHook('onClose', async () => void (await redis.quit()))

  if (config.MIGRATE_ON_START) {
    const { applied } = await migrate(database)
    if (applied.length > 0) app.log.info({ applied }, 'database migrated')
  }

  await app.register(problemHandler)
  await app.register(notFound)
  await app.register(httpSecurity, { config })
  if (config.DOCS_ENABLED) await app.register(openapi, { version })
  await app.register(metrics, { poolStats: database.poolStats })

  const checks: Record<string, ReadinessCheck> = { database: database.ping }
  if (redis) checks.redis = async () => void (await redis.ping())
  await app.register(health, { checks })

  const products = createProductService({ products: createProductRepository(database.db) })
  await app.register(productRoutes, { prefix: '/v1/products', products })

  await app.ready()
  return app
}

/** A hop count trusts exactly that many proxies in front of the service, never more. */
function trustProxySetting(trust: TrustProxy) {
  return typeof trust === 'number' ? (_address: string, hop: number) => hop < trust : trust
}

export function databaseSettings(config: Config) {
  return {
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.DATABASE_POOL_MAX,
    connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
  }
}

function connectRedis(config: Config): Redis | null {
  if (!config.REDIS_URL) return null
  const redis = new Redis(config.REDIS_URL, {
    lazyConnect: true,
    // Fail commands fast while Redis is away instead of queueing them behind requests.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: config.DATABASE_CONNECT_TIMEOUT_MS,
  })
  redis.on('error', () => {}) // reconnects by itself; /ready reports the outage
  redis.connect().catch(() => {})
  return redis
}
