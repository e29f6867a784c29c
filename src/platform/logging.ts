import {
  type FastifyBaseLogger,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify'
import type { Bindings, ChildLoggerOptions, DestinationStream, Logger } from 'pino'
import type { Config } from '../config.js'

/** Keys whose value is a credential, wherever a log object holds them (see `redactSecrets`). */
const SECRET_KEYS = [
  'password',
  'current_password',
  'new_password',
  'access_token',
  'refresh_token',
  'api_key',
  'token',
] as const

/** Credentials at fixed paths of a log object, which pino's redaction censors. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  ...SECRET_KEYS,
]

const CENSOR = '[REDACTED]'

/**
 * Censors a credential one level down, as pino's `*.password` paths would: `{ body:
 * { password } }`. Pino applies a path that starts with a wildcard to every value of every
 * line, through its redaction library even for a number: with six such paths a line cost
 * four times what it cost without them (about 20 µs of the 25 µs the request line took), more
 * than all the work of `GET /health`. Here a line whose values are all primitives, as the
 * request line is, costs a type check per key; an object holding a credential is copied with
 * the credential censored (its prototype and hidden properties kept, so an error still
 * serialises as one), and the caller's object is never changed.
 */
export function redactSecrets(line: Record<string, unknown>): Record<string, unknown> {
  let redacted: Record<string, unknown> | undefined
  for (const key in line) {
    const value = line[key]
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue
    const holder = value as Record<string, unknown>
    const found = SECRET_KEYS.filter((secret) => holder[secret] !== undefined)
    if (found.length === 0) continue
    const copy = Object.create(
      Object.getPrototypeOf(holder),
      Object.getOwnPropertyDescriptors(holder),
    ) as Record<string, unknown>
    for (const secret of found) {
      Object.defineProperty(copy, secret, { value: CENSOR, enumerable: true, writable: true })
    }
    redacted ??= { ...line }
    redacted[key] = copy
  }
  return redacted ?? line
}

export function loggerOptions(
  config: Pick<Config, 'LOG_LEVEL'>,
  stream?: DestinationStream,
): FastifyServerOptions['logger'] {
  return {
    level: config.LOG_LEVEL,
    redact: { paths: REDACTED_PATHS, censor: CENSOR },
    formatters: { log: redactSecrets },
    ...(stream ? { stream } : {}),
  }
}

/**
 * One line per request, written when the response is done, in place of Fastify's pair of
 * "incoming request" / "request completed" lines. It names the caller the auth hook
 * resolved (`user_id`, and `api_key_id` when they came with a key); both are null when the
 * request had none or failed to authenticate, so every line has the same fields.
 */
export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'request_id' })
  }

  override incomingRequest() {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ) {
    const line = {
      user_id: request.caller?.userId ?? null,
      api_key_id: request.caller?.apiKeyId ?? null,
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status_code: reply.statusCode,
      latency_ms: Math.round(reply.elapsedTime * 100) / 100,
      ...(error ? { err: error } : {}),
    }
    if (error) reply.log.error(line, 'request errored')
    else reply.log.info(line, 'request completed')
  }
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' &&
  value !== null &&
  (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)

/**
 * Fastify's per-request logger, which binds the request id, made only when it is needed.
 * Fastify builds a pino child for every request, and building one costs more than a request
 * such as `GET /health` spends on its work (its bindings pass through the redaction
 * serialiser, and every level method is bound anew): about 5 % of the CPU of `/health`
 * under load, for a child that most requests never use. Here a line logged with an object
 * (the request line, most others) is written by the parent with the id merged in, which
 * gives the same JSON; anything else (a message alone, an error, a grandchild, a level
 * change) makes the real child once and hands every later call to it.
 */
export function lazyRequestLogger(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  // Per-request options (a route's log level or serialisers) need pino's own child.
  if (options && Object.keys(options).length > 0) return parent.child(bindings, options)
  return new LazyRequestLogger(parent as unknown as Logger, bindings)
}

// A class, not a literal with closures: one small object per request is all it allocates.
class LazyRequestLogger implements FastifyBaseLogger {
  #child: Logger | undefined
  readonly #parent: Logger
  readonly #bindings: Bindings

  constructor(parent: Logger, bindings: Bindings) {
    this.#parent = parent
    this.#bindings = bindings
  }

  #real(): Logger {
    this.#child ??= this.#parent.child(this.#bindings)
    return this.#child
  }

  #write(level: Level, args: unknown[]): void {
    const [first, ...rest] = args
    if (!this.#child) {
      if (!this.#parent.isLevelEnabled(level)) return
      if (isPlainObject(first)) {
        const write = this.#parent[level] as (...args: unknown[]) => void
        // Not `{ ...bindings, ...first }`: pino took about 17 µs to write the object two
        // spreads make, against about 8 µs for the same keys in the same order from
        // Object.assign (docs/ARCHITECTURE.md, "Per-request platform cost").
        write.call(this.#parent, Object.assign({}, this.#bindings, first), ...rest)
        return
      }
    }
    const child = this.#real()
    ;(child[level] as (...args: unknown[]) => void).apply(child, args)
  }

  get level(): string {
    return this.#child?.level ?? this.#parent.level
  }
  set level(level: string) {
    this.#real().level = level
  }

  fatal(...args: unknown[]): void {
    this.#write('fatal', args)
  }
  error(...args: unknown[]): void {
    this.#write('error', args)
  }
  warn(...args: unknown[]): void {
    this.#write('warn', args)
  }
  info(...args: unknown[]): void {
    this.#write('info', args)
  }
  debug(...args: unknown[]): void {
    this.#write('debug', args)
  }
  trace(...args: unknown[]): void {
    this.#write('trace', args)
  }
  silent(): void {}

  child(more: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#real().child(more, options) as unknown as FastifyBaseLogger
  }
}
