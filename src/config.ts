import { existsSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { parse as parseDotenv } from 'dotenv'
import { type Static, Type } from 'typebox'
import { OperatorError } from './shared/operator-error.js'

/** Usable for local development only; production refuses to start with it. */
export const DEVELOPMENT_JWT_SECRET = 'orderflow-development-secret-do-not-use-in-production'

/**
 * Every setting of the service, read from the environment (and an optional `.env`).
 * The descriptions double as the "what it expects" part of start-up errors and are
 * mirrored in `.env.example`.
 */
const EnvSchema = Type.Object({
  NODE_ENV: Type.Union(
    [Type.Literal('development'), Type.Literal('production'), Type.Literal('test')],
    { default: 'development', description: 'one of development, production, test' },
  ),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'an interface address' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8000, description: 'a TCP port' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'one of fatal, error, warn, info, debug, trace, silent' },
  ),
  DATA_DIR: Type.String({ minLength: 1, default: './data', description: 'a directory path' }),
  DATABASE_URL: Type.Optional(
    Type.String({ pattern: '^postgres(ql)?://', description: 'a postgres:// connection URL' }),
  ),
  DATABASE_POOL_MAX: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 10,
    description: 'connections',
  }),
  DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 5000,
    description: 'milliseconds',
  }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({
    minimum: 0,
    default: 15000,
    description: 'milliseconds, 0 for none',
  }),
  MIGRATE_ON_START: Type.Boolean({ default: true, description: 'true or false' }),
  REDIS_URL: Type.Optional(
    Type.String({ pattern: '^rediss?://', description: 'a redis:// connection URL' }),
  ),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({
    minimum: 10,
    maximum: 10_000,
    default: 300,
    description: 'milliseconds before a Redis command counts as Redis unreachable',
  }),
  REDIS_BREAKER_RESET_MS: Type.Integer({
    minimum: 100,
    maximum: 60_000,
    default: 2000,
    description: 'milliseconds an open Redis breaker waits before trying Redis again',
  }),
  CORS_ORIGINS: Type.String({
    default: '',
    description: 'comma-separated origins, empty for none',
  }),
  TRUST_PROXY: Type.String({
    default: '',
    description: 'empty, a hop count, or comma-separated IPs/CIDRs',
  }),
  TLS_TERMINATED: Type.Boolean({
    default: false,
    description: 'true or false (true when clients reach the service over HTTPS only)',
  }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 1_048_576, description: 'bytes' }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 30_000, description: 'milliseconds' }),
  CONNECTION_TIMEOUT_MS: Type.Integer({
    minimum: 1000,
    default: 60_000,
    description: 'milliseconds',
  }),
  KEEP_ALIVE_TIMEOUT_MS: Type.Integer({
    minimum: 1000,
    default: 72_000,
    description: 'milliseconds',
  }),
  WEB_CONCURRENCY: Type.String({
    pattern: '^(auto|[1-9][0-9]{0,2})$',
    default: '1',
    description: 'server processes sharing the port: a count (1-999) or auto (the CPU count)',
  }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10_000, description: 'milliseconds' }),
  SHUTDOWN_DRAIN_MS: Type.Integer({ minimum: 0, default: 0, description: 'milliseconds' }),
  DOCS_ENABLED: Type.Boolean({ default: true, description: 'true or false' }),
  JWT_SECRET: Type.String({
    minLength: 1,
    default: DEVELOPMENT_JWT_SECRET,
    description: 'a random secret of at least 32 bytes',
  }),
  JWT_PREVIOUS_SECRETS: Type.String({
    default: '',
    description: 'comma-separated earlier JWT secrets that still verify tokens, empty for none',
  }),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'orderflow', description: 'the iss claim' }),
  JWT_AUDIENCE: Type.String({
    minLength: 1,
    default: 'orderflow-api',
    description: 'the aud claim',
  }),
  JWT_CLOCK_TOLERANCE_S: Type.Integer({
    minimum: 0,
    maximum: 300,
    default: 30,
    description: 'seconds (0-300)',
  }),
  ACCESS_TOKEN_TTL_S: Type.Integer({
    minimum: 60,
    maximum: 86_400,
    default: 900,
    description: 'seconds (60-86400)',
  }),
  REFRESH_TOKEN_TTL_S: Type.Integer({ minimum: 300, default: 2_592_000, description: 'seconds' }),
  PASSWORD_HASH_CONCURRENCY: Type.Integer({
    minimum: 0,
    maximum: 64,
    default: 0,
    description: 'password hashes computed at once (0 = CPU count - 1, at least 1)',
  }),
  PASSWORD_HASH_QUEUE: Type.Integer({
    minimum: 0,
    maximum: 10_000,
    default: 64,
    description: 'password hashes allowed to wait before sign-ins answer 503',
  }),
  AUTH_CACHE_TTL_MS: Type.Integer({
    minimum: 0,
    maximum: 60_000,
    default: 5000,
    description: 'milliseconds (0-60000, 0 disables the cache)',
  }),
  REGISTRATION_ENABLED: Type.Optional(
    Type.Boolean({ description: 'true or false (default: true, false in production)' }),
  ),
  ADMIN_EMAIL: Type.Optional(Type.String({ format: 'email', description: 'an email address' })),
  ADMIN_PASSWORD: Type.Optional(
    Type.String({ minLength: 12, maxLength: 128, description: '12-128 characters' }),
  ),
  RATE_LIMIT_MAX: Type.Integer({
    minimum: 1,
    default: 600,
    description: 'requests per window per caller',
  }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({
    minimum: 1000,
    default: 60_000,
    description: 'milliseconds',
  }),
  LOGIN_RATE_LIMIT_MAX: Type.Integer({
    minimum: 1,
    default: 10,
    description: 'token requests per window per client address and per username',
  }),
  LOGIN_RATE_LIMIT_WINDOW_MS: Type.Integer({
    minimum: 1000,
    default: 60_000,
    description: 'milliseconds',
  }),
  RATE_LIMIT_SYNC_INTERVAL_MS: Type.Integer({
    minimum: 10,
    maximum: 10_000,
    default: 100,
    description: 'milliseconds between reconciliations of the rate-limit counts with Redis',
  }),
  IDEMPOTENCY_TTL_S: Type.Integer({
    minimum: 60,
    default: 86_400,
    description: 'seconds (at least 60)',
  }),
  IDEMPOTENCY_LEASE_MS: Type.Integer({
    minimum: 1000,
    default: 35_000,
    description: 'milliseconds a claimed Idempotency-Key without an outcome stays in progress',
  }),
  ORDER_MAX_TOTAL_QUANTITY: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 20,
    description: 'units per order, all lines together (1-10000)',
  }),
  ORDER_COUNT_EXACT_MAX: Type.Integer({
    minimum: 0,
    default: 1000,
    description: 'orders an order page counts exactly; beyond, its total is an estimate',
  }),
  MODEL_MAX_BYTES: Type.Integer({
    minimum: 1024,
    default: 104_857_600,
    description: 'bytes of one uploaded ONNX file',
  }),
  MODELS_REGISTER_SHIPPED: Type.Boolean({ default: true, description: 'true or false' }),
  INFERENCE_INTRA_OP_THREADS: Type.Integer({
    minimum: 1,
    default: 1,
    description: 'ONNX Runtime threads per model session',
  }),
  MODELS_MAX_LOADED: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 8,
    description: 'model versions loaded at once (least recently used unloaded)',
  }),
  MODELS_SYNC_INTERVAL_MS: Type.Integer({
    minimum: 0,
    default: 30_000,
    description: 'milliseconds between checks of the active versions in the database (0 = never)',
  }),
  INFERENCE_MAX_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 32,
    description: 'rows one inference call gathers (1 turns batching off)',
  }),
  INFERENCE_MAX_WAIT_MS: Type.Number({
    minimum: 0,
    maximum: 1000,
    default: 2,
    description: 'milliseconds a prediction waits for others to batch with (0-1000)',
  }),
  MODEL_BATCHING: Type.String({
    default: '',
    description: 'per-model overrides, e.g. iris=64/1,car-price=1/0 (max batch size/max wait ms)',
  }),
  PREDICT_BATCH_MAX: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 1000,
    description: 'instances in one batch prediction request',
  }),
  PREDICT_QUEUE_MAX: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    default: 256,
    description: 'rows waiting for inference per model version; beyond, 503 with Retry-After',
  }),
  PREDICTION_CACHE_TTL_MS: Type.Integer({
    minimum: 0,
    default: 60_000,
    description: 'milliseconds a prediction is cached (0 disables the cache)',
  }),
  PREDICTION_CACHE_MAX_ENTRIES: Type.Integer({
    minimum: 1,
    default: 10_000,
    description: 'predictions the in-process cache holds (embedded mode)',
  }),
  PREDICT_RATE_LIMIT_MAX: Type.Integer({
    minimum: 1,
    default: 6000,
    description: 'prediction requests per window per caller',
  }),
  PREDICT_RATE_LIMIT_WINDOW_MS: Type.Integer({
    minimum: 1000,
    default: 60_000,
    description: 'milliseconds',
  }),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(
    Type.String({
      pattern: '^https?://',
      description:
        'an OTLP/HTTP collector URL, e.g. http://otel-collector:4318 (unset: no tracing)',
    }),
  ),
  OTEL_SERVICE_NAME: Type.String({
    minLength: 1,
    default: 'orderflow',
    description: 'the service.name of exported spans',
  }),
  WORKER_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 2,
    description: 'jobs one worker process (or the embedded runner) runs at once',
  }),
  WORKER_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 8001,
    description: "the TCP port of the worker process's /health and /metrics",
  }),
  WORKER_SHUTDOWN_GRACE_MS: Type.Integer({
    minimum: 0,
    default: 30_000,
    description: 'milliseconds a stopping worker lets running jobs finish before aborting them',
  }),
  WORKER_LOCK_MS: Type.Integer({
    minimum: 1000,
    default: 30_000,
    description: "milliseconds before a dead worker's job counts as stalled and runs again",
  }),
  JOB_RETRY_BASE_MS: Type.Integer({
    minimum: 1,
    default: 1000,
    description: "milliseconds before a failed job's first retry (doubling each retry)",
  }),
  JOB_RETENTION_DAYS: Type.Integer({
    minimum: 1,
    default: 30,
    description: 'days a finished job (its events and temporary data) is kept',
  }),
  JOBS_POLL_INTERVAL_MS: Type.Integer({
    minimum: 10,
    maximum: 60_000,
    default: 500,
    description: 'milliseconds between outbox relay passes (and embedded queue polls)',
  }),
  HOUSEKEEPING_INTERVAL_MS: Type.Integer({
    minimum: 0,
    default: 3_600_000,
    description: 'milliseconds between housekeeping runs (0 = never)',
  }),
  QUEUE_PREFIX: Type.String({
    pattern: '^[A-Za-z0-9:_-]{1,64}$',
    default: 'orderflow',
    description: 'the Redis key prefix of the job queue',
  }),
  SMTP_URL: Type.Optional(
    Type.String({
      pattern: '^smtps?://',
      description: 'an smtp:// or smtps:// URL (unset: no emails are sent)',
    }),
  ),
  SMTP_FROM: Type.String({
    minLength: 3,
    default: 'OrderFlow <no-reply@orderflow.local>',
    description: 'the From address of emails',
  }),
  SMTP_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 10_000,
    description: 'milliseconds an SMTP connection or answer may take',
  }),
  SERVER_TIMING: Type.Boolean({
    default: false,
    description: 'true or false (true sends a Server-Timing header with the time spent)',
  }),
})

type Env = Static<typeof EnvSchema>

/** Every environment variable the service reads. */
export const CONFIG_KEYS = Object.keys(EnvSchema.properties)

export type TrustProxy = false | number | string[]

/** How one model's predictions are gathered into inference calls. */
export interface BatchingSettings {
  maxBatchSize: number
  maxWaitMs: number
}

export type Config = Omit<Env, 'REGISTRATION_ENABLED'> & {
  corsOrigins: string[]
  trustProxy: TrustProxy
  /** MODEL_BATCHING, by model name. */
  modelBatching: Record<string, BatchingSettings>
  /** JWT_PREVIOUS_SECRETS, split. */
  jwtPreviousSecrets: string[]
  REGISTRATION_ENABLED: boolean
}

export class ConfigError extends OperatorError {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
  }
}

const envAjv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true })
addFormats.default(envAjv)
const validateEnv = envAjv.compile(EnvSchema)

/**
 * Reads, validates and types the configuration. Throws a ConfigError naming every bad
 * variable and what it expects, so the process stops before it binds a port.
 * Variables set in the real environment win over those in `.env`.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  dotenvPath: string | null = '.env',
): Config {
  const fromFile = dotenvPath && existsSync(dotenvPath) ? parseDotenv(readFileSync(dotenvPath)) : {}
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key] ?? fromFile[key]
    // An empty assignment (`DATABASE_URL=`) means "unset", as in most twelve-factor tools.
    if (value !== undefined && value !== '') raw[key] = value
  }

  if (!validateEnv(raw)) {
    const problems = (validateEnv.errors ?? []).map((error) => {
      const key = error.instancePath.slice(1)
      const schema = (EnvSchema.properties as Record<string, { description?: string }>)[key]
      return `${shown(key, raw[key])} is invalid: expected ${schema?.description ?? error.message}`
    })
    throw new ConfigError([...new Set(problems)])
  }
  const parsed = raw as Env

  const problems: string[] = []
  const trustProxy = parseTrustProxy(parsed.TRUST_PROXY, problems)
  const corsOrigins = parsed.CORS_ORIGINS.split(',')
    .map((origin) => origin.trim())
    .filter(Boolean)
  const config: Config = {
    ...parsed,
    corsOrigins,
    trustProxy,
    modelBatching: parseModelBatching(parsed.MODEL_BATCHING, problems),
    jwtPreviousSecrets: parsed.JWT_PREVIOUS_SECRETS.split(',')
      .map((secret) => secret.trim())
      .filter(Boolean),
    // Open sign-up suits a laptop; a production service opts in deliberately.
    REGISTRATION_ENABLED: parsed.REGISTRATION_ENABLED ?? parsed.NODE_ENV !== 'production',
  }
  if ((config.ADMIN_EMAIL === undefined) !== (config.ADMIN_PASSWORD === undefined)) {
    problems.push('ADMIN_EMAIL and ADMIN_PASSWORD must be set together')
  }

  if (config.IDEMPOTENCY_LEASE_MS >= config.IDEMPOTENCY_TTL_S * 1000) {
    problems.push('IDEMPOTENCY_LEASE_MS must be shorter than IDEMPOTENCY_TTL_S')
  }
  if (config.NODE_ENV === 'production') problems.push(...insecureForProduction(config))
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

/** Never echoed, even when invalid: a mistyped secret is still most of the secret. */
const SECRET_KEYS = new Set(['JWT_SECRET', 'ADMIN_PASSWORD'])
/** Echoed without their password: the rest is what an operator needs to spot the mistake. */
const URL_KEYS = new Set(['DATABASE_URL', 'REDIS_URL', 'SMTP_URL'])

function shown(key: string, value: unknown): string {
  if (SECRET_KEYS.has(key)) return `${key} (value not shown)`
  if (URL_KEYS.has(key)) return `${key}=${JSON.stringify(withoutPassword(String(value)))}`
  return `${key}=${JSON.stringify(value)}`
}

/** A URL with its password (in the user part or the query) replaced by `***`. */
export function withoutPassword(value: string): string {
  let url: URL
  try {
    // Without `scheme://`, "user:secret@host" would parse as scheme "user" and path "secret@host".
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) throw new Error('no scheme')
    url = new URL(value)
  } catch {
    return '(not a URL; value not shown)'
  }
  if (url.password) url.password = '***'
  if (url.searchParams.has('password')) url.searchParams.set('password', '***')
  return url.toString()
}

function parseTrustProxy(value: string, problems: string[]): TrustProxy {
  const trimmed = value.trim()
  if (trimmed === '' || trimmed === 'false') return false
  if (/^\d+$/.test(trimmed)) return Number(trimmed)
  const entries = trimmed.split(',').map((entry) => entry.trim())
  const invalid = entries.filter((entry) => !isIpOrCidr(entry))
  if (invalid.length > 0) {
    // `true` would trust any X-Forwarded-For, letting every client pick its own address.
    problems.push(
      `TRUST_PROXY=${JSON.stringify(value)} is invalid: expected empty, a hop count, or comma-separated IPs/CIDRs (never true)`,
    )
    return false
  }
  return entries
}

function parseModelBatching(value: string, problems: string[]): Record<string, BatchingSettings> {
  const settings: Record<string, BatchingSettings> = {}
  for (const entry of value.split(',').map((part) => part.trim())) {
    if (entry === '') continue
    const match = /^([a-z0-9]+(?:-[a-z0-9]+)*)=(\d+)\/(\d+(?:\.\d+)?)$/.exec(entry)
    const maxBatchSize = Number(match?.[2])
    const maxWaitMs = Number(match?.[3])
    if (!match?.[1] || maxBatchSize < 1 || maxWaitMs > 1000) {
      problems.push(
        `MODEL_BATCHING entry ${JSON.stringify(entry)} is invalid: expected <model>=<max batch size >= 1>/<max wait ms 0-1000>`,
      )
      continue
    }
    settings[match[1]] = { maxBatchSize, maxWaitMs }
  }
  return settings
}

function isIpOrCidr(entry: string): boolean {
  const [address, prefix, ...rest] = entry.split('/')
  if (rest.length > 0 || !address) return false
  const family = isIP(address)
  if (family === 0) return false
  if (prefix === undefined) return true
  const bits = Number(prefix)
  return /^\d+$/.test(prefix) && bits <= (family === 4 ? 32 : 128)
}

function insecureForProduction(config: Config): string[] {
  const problems: string[] = []
  if (config.JWT_SECRET === DEVELOPMENT_JWT_SECRET) {
    problems.push('JWT_SECRET must be set in production (the development default is public)')
  } else if (Buffer.byteLength(config.JWT_SECRET) < 32) {
    problems.push('JWT_SECRET must be at least 32 bytes in production')
  }
  // A previous secret still verifies tokens, so a weak one forges them as well as a weak
  // JWT_SECRET would. Problems name the position, never the secret.
  config.jwtPreviousSecrets.forEach((secret, index) => {
    if (secret === DEVELOPMENT_JWT_SECRET || Buffer.byteLength(secret) < 32) {
      problems.push(
        `JWT_PREVIOUS_SECRETS entry ${index + 1} must be at least 32 bytes and not the development default in production`,
      )
    }
  })
  if (config.corsOrigins.includes('*')) {
    problems.push('CORS_ORIGINS must list origins explicitly in production, not "*"')
  }
  return problems
}
