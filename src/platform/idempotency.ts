import { createHash } from 'node:crypto'
import { and, eq, getTableColumns, gt, isNull, sql } from 'drizzle-orm'
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onSendHookHandler,
  preHandlerHookHandler,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import type { Database, Transaction, TransactionHook } from '../db/client.js'
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
export const IdempotencyAnswerLost = defineError('IDEMPOTENCY_ANSWER_LOST', 409)

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
  /**
   * How long a claim without an outcome (no stored answer, no commit) holds its key before
   * a retry may take it over and run the request again.
   */
  leaseMs: number
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
  /** Set once the guarded work marked its commit in its transaction. */
  marked?: boolean
}

/**
 * The claim each guarded request holds, for `idempotentCommit` to find. Keyed by the request
 * object, so entries leave with their requests and two apps never see each other's.
 */
const claims = new WeakMap<FastifyRequest, Claim>()

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

/** This request's record, as long as no later claim took the key over and no answer is stored. */
function ownClaim(claim: Claim) {
  return and(
    eq(idempotencyKeys.scope, claim.scope),
    eq(idempotencyKeys.key, claim.key),
    eq(idempotencyKeys.createdAt, sql`${claim.token}::timestamptz`),
    isNull(idempotencyKeys.statusCode),
  )
}

/**
 * Marks the claim's work as committed, inside the work's own transaction: the mark exists if
 * and only if the work committed, so a retry can tell "done, answer lost" from "rolled back".
 * The update is also a fence: if the lease ran out and a retry took the key over (a new
 * token), nothing matches and the work rolls back instead of committing a second time. Its
 * row lock makes a concurrent take-over or release wait for this transaction's outcome.
 */
async function markCommitted(tx: Transaction, claim: Claim, location: string): Promise<void> {
  const marked = await tx
    .update(idempotencyKeys)
    .set({ committedAt: sql`now()`, resourceLocation: location })
    .where(and(ownClaim(claim), isNull(idempotencyKeys.committedAt)))
    .returning({ key: idempotencyKeys.key })
  if (marked.length === 0) {
    throw new IdempotencyKeyInProgress(
      `This request outlived the lease on its ${IDEMPOTENCY_HEADER} and a retry took the key ` +
        'over; nothing was changed here, and the retry’s answer is the one that counts.',
    )
  }
  claim.marked = true
}

/**
 * The hook a guarded route hands its service (`TransactionHook`), so that the key is marked
 * committed in the same transaction as the work; `locationOf` names the created resource for
 * a retry whose answer was lost. Undefined when the request carries no key.
 */
export function idempotentCommit<T>(
  request: FastifyRequest,
  locationOf: (resource: T) => string,
): TransactionHook<T> | undefined {
  const claim = claims.get(request)
  if (!claim) return undefined
  return (tx, resource) => markCommitted(tx, claim, locationOf(resource))
}

/** The SQL behind the guard: claim, look up, complete, release and clean up records. */
function createIdempotencyStore(db: Database, ttlSeconds: number, leaseMs: number) {
  const table = idempotencyKeys

  return {
    /**
     * Claims the key in one statement: inserts the record, takes over an expired one, or
     * takes over the same request's claim whose lease ran out without a commit (the work
     * rolled back or never ran; the fence in `markCommitted` stops it committing later).
     * Under concurrency exactly one caller gets a row back; the others get none.
     */
    async claim(scope: string, key: string, request: Fingerprint): Promise<Claim | null> {
      const expiresAt = sql`now() + make_interval(secs => ${ttlSeconds})`
      const leaseExpiresAt = sql`now() + make_interval(secs => ${leaseMs / 1000})`
      const [row] = await db
        .insert(table)
        .values({ scope, key, ...request, expiresAt, leaseExpiresAt })
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
            leaseExpiresAt,
            committedAt: null,
            resourceLocation: null,
          },
          // A lapsed lease is taken over only by the same request: another body reusing the
          // key still gets 422. A NULL lease (a record older than leases) never lapses.
          setWhere: sql`${table.expiresAt} <= now() or (
            ${table.statusCode} is null and ${table.committedAt} is null
            and ${table.leaseExpiresAt} <= now()
            and ${table.method} = ${request.method} and ${table.path} = ${request.path}
            and ${table.requestHash} = ${request.requestHash})`,
        })
        // Text keeps the microseconds a JS Date would round away.
        .returning({ token: sql<string>`${table.createdAt}::text` })
      return row ? { scope, key, token: row.token } : null
    },

    async find(scope: string, key: string) {
      const [row] = await db
        .select({ ...getTableColumns(table), now: sql<Date>`now()`.mapWith(table.createdAt) })
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

    /**
     * Deletes the claim unless its work committed; true if it did. The mark's row lock makes
     * this wait for a COMMIT still in flight, so it never deletes a record about to commit.
     */
    async release(claim: Claim): Promise<boolean> {
      const deleted = await db
        .delete(table)
        .where(and(ownClaim(claim), isNull(table.committedAt)))
        .returning({ key: table.key })
      return deleted.length > 0
    },

    /** Ends the claim's lease now; false if a retry has taken the key over meanwhile. */
    async endLease(claim: Claim): Promise<boolean> {
      const ended = await db
        .update(table)
        .set({ leaseExpiresAt: sql`now()` })
        .where(ownClaim(claim))
        .returning({ key: table.key })
      return ended.length > 0
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

/**
 * True once the claim's lease has ended (by the database clock, when the record was read).
 * A record older than leases has none and waits for its expiry.
 */
function leaseOver(record: { leaseExpiresAt: Date | null; now: Date }): boolean {
  return record.leaseExpiresAt !== null && record.leaseExpiresAt <= record.now
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
    409:
      `A request with this ${IDEMPOTENCY_HEADER} is still running (IDEMPOTENCY_KEY_IN_PROGRESS); ` +
      'see `Retry-After`. Or it was carried out but its answer was lost ' +
      '(IDEMPOTENCY_ANSWER_LOST): `Location` names the resource it created.',
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
 * any retry with the same method, path and body. The route hands `idempotentCommit(request,
 * ...)` to its service, which marks the key committed inside the work's transaction; so a 5xx
 * releases the key unless the work committed, and a claim left behind (the database or the
 * process went away) is settled by its record once its lease ends: committed -> 409 with the
 * resource's Location, not committed -> the retry runs it. See docs/ARCHITECTURE.md,
 * "Idempotency", for the decisions.
 */
export const idempotency = fp(
  async (app: FastifyInstance, options: IdempotencyOptions) => {
    const store = createIdempotencyStore(options.db, options.ttlSeconds, options.leaseMs)
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
        if (record.statusCode !== null) {
          return replay(reply, { ...record, statusCode: record.statusCode })
        }
        // Within the lease the first request may still be running, or storing its answer
        // right after its commit: the retry waits (409 in progress, below).
        if (!leaseOver(record)) break
        // Committed, no answer stored, lease over: the work is done and its answer is lost
        // (the connection died at COMMIT, the process was killed). Running it again would
        // double it, and rebuilding the first answer from today's resource would pass the
        // current state off as a replay, so the honest answer is where the resource is.
        if (record.committedAt !== null) {
          if (record.resourceLocation) reply.header('location', record.resourceLocation)
          throw new IdempotencyAnswerLost(
            `The request with this ${IDEMPOTENCY_HEADER} was carried out, but its answer was ` +
              'not stored; read what it created at the `Location`.',
          )
        }
        break
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
        if (reply.statusCode >= 500) {
          // Unless its work committed, the change rolled back with the failed request and a
          // retry may run again at once. If the database is still away this fails, and the
          // lease settles the key instead. If the work committed, the request is over all
          // the same: its lease ends now, so retries learn the outcome at once.
          if (!(await store.release(claim)) && (await store.endLease(claim))) {
            request.log.warn(
              { idempotency_key: claim.key },
              'a 5xx after the work committed; retries get 409 IDEMPOTENCY_ANSWER_LOST',
            )
          }
        } else if (typeof payload === 'string' || Buffer.isBuffer(payload)) {
          if (reply.statusCode < 300 && !claim.marked) {
            request.log.warn(
              'idempotent route succeeded without idempotentCommit(); were its answer lost, a ' +
                'retry after the lease would run it again',
            )
          }
          await store.complete(claim, {
            statusCode: reply.statusCode,
            responseHeaders: storedHeaders(reply),
            responseBody: payload.toString(),
          })
        } else {
          request.log.error(
            'idempotent route answered a stream; its key stays in progress until its lease ends',
          )
        }
      } catch (error) {
        // The client still gets its answer; retries meet "in progress" until the lease ends,
        // then the record's commit mark decides.
        request.log.error({ err: error }, 'could not store or release the idempotent answer')
      }
      return payload
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
    })
  },
  { name: 'idempotency', dependencies: ['auth'] },
)
