import { existsSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { parse as parseDotenv } from 'dotenv'
import { type Static, Type } from 'typebox'
import { EMBEDDED_SHARED_BUFFERS_MB } from './db/pglite-protocol.js'
import { type OidcProvider, parseOidcProviders } from './modules/oidc/provider-config.js'
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
  EMBEDDED_SHARED_BUFFERS_MB: Type.Integer({
    minimum: 1,
    maximum: 4096,
    default: EMBEDDED_SHARED_BUFFERS_MB,
    description: 'megabytes of PostgreSQL shared_buffers in embedded mode (1-4096)',
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
  PASSWORD_LOGIN_ENABLED: Type.Boolean({
    default: true,
    description: 'true or false (false refuses the password grant: single sign-on only)',
  }),
  PUBLIC_URL: Type.Optional(
    Type.String({
      pattern: '^https?://[^/?#]+$',
      description: 'the origin clients reach the service at, e.g. https://orders.example.com',
    }),
  ),
  OIDC_PROVIDERS: Type.Optional(
    Type.String({ minLength: 1, description: 'a JSON array of OpenID Connect providers' }),
  ),
  OIDC_PROVIDERS_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'a path to a JSON file like OIDC_PROVIDERS' }),
  ),
  OIDC_CLIENT_REDIRECT_URIS: Type.String({
    default: '',
    description:
      'comma-separated front-end URLs a finished sign-in may return to (the first is the default)',
  }),
  OIDC_JWKS_COOLDOWN_MS: Type.Integer({
    minimum: 0,
    maximum: 3_600_000,
    default: 30_000,
    description: 'milliseconds between two fetches of a provider key set for an unknown kid',
  }),
  OIDC_HTTP_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 60_000,
    default: 5000,
    description: 'milliseconds to wait for a provider (discovery, keys, code exchange)',
  }),
  REGISTRATION_ENABLED: Type.Optional(
    Type.Boolean({
      description:
        'true or false (default: true, false in production or with PASSWORD_LOGIN_ENABLED=false)',
    }),
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
  DATASET_MAX_BYTES: Type.Integer({
    minimum: 1024,
    default: 1_073_741_824,
    description: 'bytes of one uploaded dataset file (larger answers 413)',
  }),
  DATASET_INLINE_MAX_BYTES: Type.Integer({
    minimum: 0,
    default: 8_388_608,
    description: 'bytes up to which an upload imports during the request; larger ones in a job',
  }),
  DATASET_MAX_COLUMNS: Type.Integer({
    minimum: 1,
    maximum: 1500,
    default: 500,
    description: 'columns one dataset may have (1-1500)',
  }),
  DATASET_MAX_LINE_BYTES: Type.Integer({
    minimum: 1024,
    default: 1_048_576,
    description: 'bytes of one line (one record) of an uploaded file',
  }),
  DATASET_BATCH_MAX_FILES: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 10,
    description: 'files one batch upload may carry (1-100)',
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
  REDIS_PREFIX: Type.String({
    pattern: '^[A-Za-z0-9:_-]{1,64}$',
    default: 'orderflow',
    description:
      'the prefix of every Redis key and channel of the service (a deployment of its own per prefix)',
  }),
  QUEUE_PREFIX: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9:_-]{1,64}$',
      description: 'the Redis key prefix of the job queue (default: REDIS_PREFIX)',
    }),
  ),
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
  REMOTE_BACKEND_ALLOWED_HOSTS: Type.String({
    default: '',
    description:
      'comma-separated hosts a model card may name as its remote backend: host, host:port or *.domain (empty: none)',
  }),
  REMOTE_BACKEND_CONNECT_TIMEOUT_MS: Type.Integer({
    minimum: 10,
    maximum: 60_000,
    default: 1000,
    description: 'milliseconds to open a connection to a remote backend',
  }),
  REMOTE_BACKEND_TIMEOUT_MS: Type.Integer({
    minimum: 10,
    maximum: 600_000,
    default: 10_000,
    description:
      'milliseconds a remote backend call may take, retries included (a stream: per gap)',
  }),
  REMOTE_BACKEND_RETRIES: Type.Integer({
    minimum: 0,
    maximum: 10,
    default: 2,
    description: 'retries of a remote backend call after a connection error, 502, 503 or 504',
  }),
  REMOTE_BACKEND_RETRY_BASE_MS: Type.Integer({
    minimum: 0,
    maximum: 10_000,
    default: 50,
    description: 'milliseconds of the first retry backoff (doubling, with full jitter)',
  }),
  REMOTE_BACKEND_MAX_RESPONSE_BYTES: Type.Integer({
    minimum: 1024,
    default: 10_485_760,
    description: 'bytes of one remote backend answer; a larger one is refused (502)',
  }),
  REMOTE_BACKEND_CONNECTIONS: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 32,
    description: 'pooled connections per remote backend origin',
  }),
  REMOTE_BACKEND_BREAKER_RESET_MS: Type.Integer({
    minimum: 100,
    maximum: 600_000,
    default: 10_000,
    description: 'milliseconds an open breaker refuses calls before one probe goes through',
  }),
  REMOTE_BACKEND_BREAKER_ERROR_PERCENT: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 50,
    description: 'percent of failed calls in the last 10 s that opens the breaker',
  }),
  REMOTE_BACKEND_BREAKER_MIN_CALLS: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 5,
    description: 'calls in the last 10 s before the breaker judges a remote backend',
  }),
  DEFAULT_IMAGE_MODEL: Type.String({
    pattern: '^[a-z0-9]+(-[a-z0-9]+)*$',
    maxLength: 64,
    default: 'shapes',
    description: 'the image model behind POST /v1/classify-image',
  }),
  IMAGE_MAX_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 1_073_741_824,
    default: 10_485_760,
    description: 'bytes of one uploaded picture (larger answers 413)',
  }),
  IMAGE_MAX_PIXELS: Type.Integer({
    minimum: 1,
    maximum: 1_000_000_000,
    default: 25_000_000,
    description: 'pixels a picture may declare; beyond, 413 before decoding',
  }),
  GENERATE_MAX_TOKENS: Type.Integer({
    minimum: 1,
    maximum: 100_000,
    default: 1024,
    description: 'the largest max_tokens a generation request may ask for',
  }),
  READ_CACHE_TTL_MS: Type.Integer({
    minimum: 0,
    maximum: 3_600_000,
    default: 10_000,
    description: 'milliseconds (0-3600000, 0 turns the product and order read cache off)',
  }),
  READ_CACHE_MAX_ENTRIES: Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    default: 10_000,
    description: 'products and orders each kept in memory (0-1000000, 0 turns the cache off)',
  }),
  PREDICT_STREAM_BATCH_MAX: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    default: 100_000,
    description:
      'instances in one batch prediction streamed as NDJSON (Accept: application/x-ndjson)',
  }),
  WS_MAX_MESSAGE_BYTES: Type.Integer({
    minimum: 128,
    maximum: 16 * 1024 * 1024,
    default: 65_536,
    description: 'bytes in one WebSocket message; a larger one closes the socket with 1009',
  }),
  WS_MESSAGES_PER_SECOND: Type.Integer({
    minimum: 1,
    default: 200,
    description: 'WebSocket messages per second per connection; beyond, a RATE_LIMITED reply',
  }),
  WS_MAX_IN_FLIGHT: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 64,
    description: 'unanswered predictions per WebSocket; beyond, a TOO_MANY_IN_FLIGHT reply',
  }),
  WS_PING_INTERVAL_MS: Type.Integer({
    minimum: 100,
    default: 30_000,
    description: 'milliseconds between server pings; a socket that misses one pong is closed',
  }),
  WS_IDLE_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    default: 300_000,
    description: 'milliseconds without a message before the socket is closed with 1000',
  }),
  PREDICTION_LOG_SAMPLE_RATE: Type.Number({
    minimum: 0,
    maximum: 1,
    default: 1,
    description: 'share of predictions recorded in the prediction log (0 = off, 1 = all)',
  }),
  PREDICTION_LOG_SAMPLING: Type.String({
    default: '',
    description: 'per-model sample rates, e.g. iris=0.1,car-price=1',
  }),
  PREDICTION_LOG_BUFFER_MAX: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    default: 10_000,
    description: 'predictions waiting to be written; beyond, new ones are dropped and counted',
  }),
  PREDICTION_LOG_FLUSH_INTERVAL_MS: Type.Integer({
    minimum: 10,
    maximum: 60_000,
    default: 1000,
    description: 'milliseconds between writes of the prediction log buffer',
  }),
  DRIFT_PSI_THRESHOLD: Type.Number({
    exclusiveMinimum: 0,
    default: 0.2,
    description: 'population stability index above which a feature is flagged as drifted',
  }),
  DRIFT_REFRESH_INTERVAL_MS: Type.Integer({
    minimum: 0,
    default: 300_000,
    description: 'milliseconds between refreshes of the drift gauges (0 = never)',
  }),
  DRIFT_WINDOW_MS: Type.Integer({
    minimum: 60_000,
    default: 86_400_000,
    description: 'the trailing window of logged inputs the drift gauges compare',
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

export type Config = Omit<Env, 'REGISTRATION_ENABLED' | 'QUEUE_PREFIX'> & {
  corsOrigins: string[]
  trustProxy: TrustProxy
  /** MODEL_BATCHING, by model name. */
  modelBatching: Record<string, BatchingSettings>
  /** PREDICTION_LOG_SAMPLING, by model name. */
  predictionLogSampling: Record<string, number>
  /** JWT_PREVIOUS_SECRETS, split. */
  jwtPreviousSecrets: string[]
  /** OIDC_PROVIDERS (or the file OIDC_PROVIDERS_FILE names), validated, with their secrets. */
  oidcProviders: OidcProvider[]
  /** OIDC_CLIENT_REDIRECT_URIS, split. */
  oidcClientRedirectUris: string[]
  REGISTRATION_ENABLED: boolean
  QUEUE_PREFIX: string
}

export class ConfigError extends OperatorError {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
  }
}

// The validator runs once per process, so ajv's optimising pass over the generated code
// (about 40 % of this compile, which every start pays) costs more than it could save.
const envAjv = new Ajv({
  coerceTypes: true,
  useDefaults: true,
  allErrors: true,
  code: { optimize: false },
})
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
    predictionLogSampling: parseSampling(parsed.PREDICTION_LOG_SAMPLING, problems),
    jwtPreviousSecrets: parsed.JWT_PREVIOUS_SECRETS.split(',')
      .map((secret) => secret.trim())
      .filter(Boolean),
    // Open sign-up suits a laptop; a production service opts in deliberately. Sign-up makes a
    // password account, so it is off where passwords cannot sign in.
    REGISTRATION_ENABLED:
      parsed.REGISTRATION_ENABLED ??
      (parsed.NODE_ENV !== 'production' && parsed.PASSWORD_LOGIN_ENABLED),
    QUEUE_PREFIX: parsed.QUEUE_PREFIX ?? parsed.REDIS_PREFIX,
    oidcProviders: readOidcProviders(parsed, env, fromFile, problems),
    oidcClientRedirectUris: parseRedirectUris(parsed.OIDC_CLIENT_REDIRECT_URIS, problems),
  }
  if (config.oidcProviders.length > 0 && !config.PUBLIC_URL) {
    problems.push('PUBLIC_URL must be set with OIDC_PROVIDERS (providers redirect back to it)')
  }
  if (config.REGISTRATION_ENABLED && !config.PASSWORD_LOGIN_ENABLED) {
    // Such accounts could never sign in, and an address registered ahead of its owner's
    // first single sign-on would stand in the way of it (409) or, with linking, be shared.
    problems.push(
      'REGISTRATION_ENABLED=true needs PASSWORD_LOGIN_ENABLED=true (sign-up makes a password account)',
    )
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

/** Single sign-on providers, from OIDC_PROVIDERS or the file OIDC_PROVIDERS_FILE names. */
function readOidcProviders(
  parsed: Env,
  env: NodeJS.ProcessEnv,
  fromFile: Record<string, string>,
  problems: string[],
): OidcProvider[] {
  if (parsed.OIDC_PROVIDERS && parsed.OIDC_PROVIDERS_FILE) {
    problems.push('OIDC_PROVIDERS and OIDC_PROVIDERS_FILE are exclusive: set one')
    return []
  }
  let json = parsed.OIDC_PROVIDERS
  if (parsed.OIDC_PROVIDERS_FILE) {
    try {
      json = readFileSync(parsed.OIDC_PROVIDERS_FILE, 'utf8')
    } catch (error) {
      problems.push(
        `OIDC_PROVIDERS_FILE=${JSON.stringify(parsed.OIDC_PROVIDERS_FILE)} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      )
      return []
    }
  }
  if (json === undefined) return []
  // Client secrets are read by name (OIDC_<NAME>_CLIENT_SECRET), the environment first.
  return parseOidcProviders(json, { ...fromFile, ...env }, problems)
}

function parseRedirectUris(value: string, problems: string[]): string[] {
  const uris = value
    .split(',')
    .map((uri) => uri.trim())
    .filter(Boolean)
  for (const uri of uris) {
    if (!URL.canParse(uri) || !/^https?:$/.test(new URL(uri).protocol) || new URL(uri).hash) {
      problems.push(
        `OIDC_CLIENT_REDIRECT_URIS entry ${JSON.stringify(uri)} is invalid: expected an absolute http(s) URL without a fragment`,
      )
    }
  }
  return uris
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

function parseSampling(value: string, problems: string[]): Record<string, number> {
  const rates: Record<string, number> = {}
  for (const entry of value.split(',').map((part) => part.trim())) {
    if (entry === '') continue
    const match = /^([a-z0-9]+(?:-[a-z0-9]+)*)=(\d+(?:\.\d+)?)$/.exec(entry)
    const rate = Number(match?.[2])
    if (!match?.[1] || !(rate <= 1)) {
      problems.push(
        `PREDICTION_LOG_SAMPLING entry ${JSON.stringify(entry)} is invalid: expected <model>=<rate 0-1>`,
      )
      continue
    }
    rates[match[1]] = rate
  }
  return rates
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
  // The login cookie and the provider's redirect travel over it.
  if (config.oidcProviders.length > 0 && config.PUBLIC_URL?.startsWith('http:')) {
    problems.push('PUBLIC_URL must be https:// in production when OIDC_PROVIDERS is set')
  }
  if (config.corsOrigins.includes('*')) {
    problems.push('CORS_ORIGINS must list origins explicitly in production, not "*"')
  }
  return problems
}
