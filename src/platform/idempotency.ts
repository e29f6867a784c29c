import { createHash } from 'node:crypto'
import { and, eq, gt, isNull, sql } from 'drizzle-orm'
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onSendHookHandler,
  preHandlerHookHandler,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import type { Database } from '../db/client.js'
import { isDatabaseUnavailable } from '../db/connection-errors.js'
import { idempotencyKeys } from '../db/schema/index.js'
import type { Caller } from '../shared/caller.js'
import { defineError } from '../shared/errors.js'
import { ProblemSchema } from '../shared/schemas.js'
import { callerOf } from './auth.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Honour an `Idempotency-Key` header on this route: retries replay the first answer. */
    idempotent?: boolean
  }
}

export const IdempotencyKeyReused = defineError('IDEMPOTENCY_KEY_REUSED', 422)
export const IdempotencyKeyInProgress = defineError('IDEMPOTENCY_KEY_IN_PROGRESS', 409)

export const IDEMPOTENCY_HEADER = 'Idempotency-Key'
export const REPLAYED_HEADER = 'Idempotent-Replayed'
/** What a retry that finds the first request still running is told to wait, in seconds. */
const IN_PROGRESS_RETRY_AFTER_S = 1
/** The headers that belong to the answer itself; per-request ones (ids, limits) do not. */
const STORED_HEADERS = ['content-type', 'location'] as const
const CLEANUP_BATCH = 1000

const IdempotencyKeySchema = {
  type: 'string',
  minLength: 1,
  maxLength: 255,
  pattern: '^[\\x20-\\x7E]*$',
  description: '1-255 printable ASCII characters',
} as const

export interface IdempotencyOptions {
  db: Database
  /** How long a key and its stored answer are kept, from the first request. */
  ttlSeconds: number
  /** Expired records are deleted at most this often per process, after a response. */
  cleanupIntervalMs?: number
}

/** The request a key was first used for: a retry must repeat it exactly. */
interface Fingerprint {
  method: string
  path: string
  requestHash: string
}

/** A record this request claimed; `token` tells it apart from a later claim of the key. */
interface Claim {
  scope: string
  key: string
  token: string
}

type StoredAnswer = Pick<
  typeof idempotencyKeys.$inferSelect,
  'statusCode' | 'responseHeaders' | 'responseBody'
>

/**
 * Keys are scoped to the credential that sent them: an API key is its own client, and a
 * user's own bearer requests another. Two callers never see each other's answers.
 */
function scopeOf(caller: Caller): string {
  return caller.apiKeyId ? `key:${caller.apiKeyId}` : `user:${caller.userId}`
}

/** JSON with sorted keys: `{"a":1,"b":2}` and `{"b":2,"a":1}` are the same request. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, item]) => `${JSON.stringify(k)}:${canonicalJson(item)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

function fingerprintOf(request: FastifyRequest): Fingerprint {
  return {
    method: request.method,
    // The target as sent, query string included: a different query is a different request.
    path: request.url,
    requestHash: createHash('sha256').update(canonicalJson(request.body)).digest('hex'),
  }
}

/** The SQL behind the guard: claim, look up, complete, release and clean up records. */
function createIdempotencyStore(db: Database, ttlSeconds: number) {
  const table = idempotencyKeys
  const ownClaim = (claim: Claim) =>
    and(
      eq(table.scope, claim.scope),
      eq(table.key, claim.key),
      eq(table.createdAt, sql`${claim.token}::timestamptz`),
      isNull(table.statusCode),
    )

  return {
    /**
     * Claims the key in one statement: inserts the record, or takes over an expired one.
     * Under concurrency exactly one caller gets a row back; the others get none.
     */
    async claim(scope: string, key: string, request: Fingerprint): Promise<Claim | null> {
      const expiresAt = sql`now() + make_interval(secs => ${ttlSeconds})`
      const [row] = await db
        .insert(table)
        .values({ scope, key, ...request, expiresAt })
        .onConflictDoUpdate({
          target: [table.scope, table.key],
          set: {
            ...request,
            statusCode: null,
            responseHeaders: null,
            responseBody: null,
            createdAt: sql`now()`,
            completedAt: null,
            expiresAt,
          },
          setWhere: sql`${table.expiresAt} <= now()`,
        })
        // Text keeps the microseconds a JS Date would round away.
        .returning({ token: sql<string>`${table.createdAt}::text` })
      return row ? { scope, key, token: row.token } : null
    },

    async find(scope: string, key: string) {
      const [row] = await db
        .select()
        .from(table)
        .where(and(eq(table.scope, scope), eq(table.key, key), gt(table.expiresAt, sql`now()`)))
      return row ?? null
    },

    async complete(claim: Claim, answer: StoredAnswer): Promise<void> {
      await db
        .update(table)
        .set({ ...answer, completedAt: sql`now()` })
        .where(ownClaim(claim))
    },

    async release(claim: Claim): Promise<void> {
      await db.delete(table).where(ownClaim(claim))
    },

    /** Deletes a batch of expired records (the expires_at index finds them). */
    async deleteExpired(): Promise<void> {
      await db.delete(table).where(
        sql`(${table.scope}, ${table.key}) in (
          select ${table.scope}, ${table.key} from ${table}
          where ${table.expiresAt} <= now() limit ${CLEANUP_BATCH})`,
      )
    },
  }
}

function sameRequest(record: Fingerprint, request: Fingerprint): boolean {
  return (
    record.method === request.method &&
    record.path === request.path &&
    record.requestHash === request.requestHash
  )
}

function replay(reply: FastifyReply, record: StoredAnswer & { statusCode: number }) {
  return (
    reply
      .code(record.statusCode)
      .headers(record.responseHeaders ?? {})
      .header(REPLAYED_HEADER.toLowerCase(), 'true')
      // A Buffer skips every serializer: the client gets the stored bytes, unchanged.
      .send(Buffer.from(record.responseBody ?? '', 'utf8'))
  )
}

function storedHeaders(reply: FastifyReply): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const name of STORED_HEADERS) {
    const value = reply.getHeader(name)
    if (value !== undefined) headers[name] = String(value)
  }
  return headers
}

function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

/**
 * Declares the header, the guard's own answers and the replay marker on a guarded route,
 * so they appear in the OpenAPI document.
 */
function documentRoute(route: RouteOptions) {
  const schema = route.schema ?? {}
  const headers = (schema.headers ?? {}) as {
    properties?: Record<string, unknown>
    required?: string[]
  }
  const response = { ...(schema.response as Record<string, { description?: string }>) }
  for (const [status, entry] of Object.entries(response)) {
    if (Number(status) >= 500) continue
    const entryHeaders = (entry as { headers?: object }).headers
    response[status] = {
      ...entry,
      headers: {
        ...entryHeaders,
        [REPLAYED_HEADER]: {
          type: 'string',
          enum: ['true'],
          description: `Present on a replay: the answer stored for this ${IDEMPOTENCY_HEADER}.`,
        },
      },
    } as typeof entry
  }
  const guardAnswers = {
    409: `A request with this ${IDEMPOTENCY_HEADER} is still running (IDEMPOTENCY_KEY_IN_PROGRESS); see \`Retry-After\`.`,
    422: `The ${IDEMPOTENCY_HEADER} is malformed, or was used for another request (IDEMPOTENCY_KEY_REUSED).`,
  }
  for (const [status, description] of Object.entries(guardAnswers)) {
    const entry = (response[status] ?? ProblemSchema) as { description?: string }
    response[status] = { ...entry, description: `${entry.description ?? ''} ${description}`.trim() }
  }
  route.schema = {
    ...schema,
    headers: {
      ...headers,
      type: 'object',
      properties: {
        ...headers.properties,
        // Lower case: the project's own validator compiler sees the headers as Node stores them.
        [IDEMPOTENCY_HEADER.toLowerCase()]: {
          ...IdempotencyKeySchema,
          description:
            'Makes a retry safe: a repeat with the same key and request answers the stored ' +
            `response with \`${REPLAYED_HEADER}: true\` instead of running again. ` +
            `1-255 printable ASCII characters, e.g. a UUID; kept for a limited time.`,
        },
      },
    },
    response,
  }
}

/**
 * The Idempotency-Key guard (Stripe's semantics, IETF httpapi-idempotency-key-header) for
 * routes with `config: { idempotent: true }`. A request carrying the header claims the key
 * after validation and auth; its answer (2xx or 4xx) is stored and replayed byte for byte to
 * any retry with the same method, path and body. A 5xx releases the key, so a retry runs
 * again. See docs/ARCHITECTURE.md, "Idempotency", for the decisions.
 */
export const idempotency = fp(
  async (app: FastifyInstance, options: IdempotencyOptions) => {
    const store = createIdempotencyStore(options.db, options.ttlSeconds)
    const claims = new WeakMap<FastifyRequest, Claim>()
    /**
     * Requests that lost the database: their transaction may have committed with only the
     * answer lost (a connection cut during COMMIT), so their key is kept, not released.
     */
    const outcomeUnknown = new WeakSet<FastifyRequest>()
    const cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000
    let lastCleanup = Number.NEGATIVE_INFINITY

    const preHandler: preHandlerHookHandler = async function idempotencyGuard(request, reply) {
      const key = request.headers[IDEMPOTENCY_HEADER.toLowerCase()]
      if (typeof key !== 'string') return
      const scope = scopeOf(callerOf(request))
      const fingerprint = fingerprintOf(request)
      // A record released or expired between the claim and the look-up is claimed again.
      for (let attempt = 0; attempt < 3; attempt++) {
        const claim = await store.claim(scope, key, fingerprint)
        if (claim) {
          claims.set(request, claim)
          return
        }
        const record = await store.find(scope, key)
        if (!record) continue
        if (!sameRequest(record, fingerprint)) {
          const first =
            record.method === fingerprint.method && record.path === fingerprint.path
              ? 'with another body'
              : `for ${record.method} ${record.path}`
          throw new IdempotencyKeyReused(
            `This ${IDEMPOTENCY_HEADER} was first used ${first}; send a new key for a new request.`,
          )
        }
        if (record.statusCode === null) break
        return replay(reply, { ...record, statusCode: record.statusCode })
      }
      reply.header('retry-after', String(IN_PROGRESS_RETRY_AFTER_S))
      throw new IdempotencyKeyInProgress(
        `A request with this ${IDEMPOTENCY_HEADER} is still running; retry shortly.`,
      )
    }

    const onSend: onSendHookHandler = async function idempotencyStore(request, reply, payload) {
      const claim = claims.get(request)
      if (!claim) return payload
      claims.delete(request)
      try {
        if (reply.statusCode >= 500 && outcomeUnknown.has(request)) {
          request.log.warn(
            { idempotency_key: claim.key },
            'database lost mid-request; the key stays in progress until it expires',
          )
        } else if (reply.statusCode >= 500) {
          // The change rolled back with the failed request: a retry may safely run again.
          await store.release(claim)
        } else if (typeof payload === 'string' || Buffer.isBuffer(payload)) {
          await store.complete(claim, {
            statusCode: reply.statusCode,
            responseHeaders: storedHeaders(reply),
            responseBody: payload.toString(),
          })
        } else {
          request.log.error('idempotent route answered a stream; its key stays in progress')
        }
      } catch (error) {
        // The client still gets its answer; retries meet "in progress" until the key expires.
        request.log.error({ err: error }, 'could not store the idempotent answer')
      }
      return payload
    }

    async function markOutcomeUnknown(request: FastifyRequest, _reply: FastifyReply, error: Error) {
      if (claims.has(request) && isDatabaseUnavailable(error)) outcomeUnknown.add(request)
    }

    async function cleanup(request: FastifyRequest) {
      if (Date.now() - lastCleanup < cleanupIntervalMs) return
      lastCleanup = Date.now()
      await store.deleteExpired().catch((error: unknown) => {
        request.log.warn({ err: error }, 'could not delete expired idempotency keys')
      })
    }

    app.addHook('onRoute', (route) => {
      if (!route.config?.idempotent) return
      const methods = asArray(route.method)
      if (methods.some((method) => method === 'GET' || method === 'HEAD')) {
        throw new Error(`${route.url}: reads are idempotent already; drop config.idempotent`)
      }
      if (route.config.auth && 'public' in route.config.auth) {
        throw new Error(`${route.url}: an idempotent route needs a caller to scope its keys`)
      }
      documentRoute(route)
      // Last among the route's pre-handlers: any guard of its own refuses before a claim.
      route.preHandler = [...asArray(route.preHandler), preHandler]
      // First among its onSend hooks: the answer is stored before compression rewrites it.
      route.onSend = [onSend, ...asArray(route.onSend)]
      route.onResponse = [...asArray(route.onResponse), cleanup]
      route.onError = [...asArray(route.onError), markOutcomeUnknown]
    })
  },
  { name: 'idempotency', dependencies: ['auth'] },
)
