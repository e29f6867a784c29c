import { createHash, randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'
import { type Broadcast, createBroadcast } from '../shared/broadcast.js'

/** How a read was answered: from a cache, from the database, or from the database because the cached copy was outdated. */
export type ReadCacheResult = 'hit' | 'miss' | 'stale'

/** A resource as it is served, with the strong validator of its JSON body. */
export interface Tagged<T> {
  value: T
  etag: string
}

/**
 * One kind of resource (an order, a product) read through the cache. The value cached is
 * the resource itself, the same for every caller: whoever reads it applies their own access
 * rule to every hit, so a cache never answers for one caller what another was allowed to see.
 */
export interface ResourceCache<T> {
  read(id: string, load: (id: string) => Promise<T | undefined>): Promise<Tagged<T> | undefined>
  /**
   * After a committed write: this instance and Redis forget `ids` before this resolves, and
   * the other instances are told. A read that was loading one of them keeps its answer but
   * does not store it, so a value read before the commit cannot outlive it.
   */
  changed(ids: readonly string[]): Promise<void>
  /** The same for every resource of this kind (an order shows its customer's name). */
  changedAll(): Promise<void>
}

export interface ReadCacheOptions {
  /** How long a cached value may be served; 0 turns the cache off. */
  ttlMs: number
  /** Entries kept per resource in this process; 0 turns the cache off. */
  maxEntries: number
  /** The second level, shared by every instance; null in embedded mode. */
  redis: Redis | null
  /** Prefix of every Redis key and of the broadcast channel. */
  keyPrefix: string
  log: FastifyBaseLogger
  /** Called for every read, for metrics and Server-Timing. */
  onRead?: (resource: string, result: ReadCacheResult) => void
}

/** The strong ETag of a JSON body: equal exactly when the serialised bodies are. */
export function etagOf(value: unknown): string {
  return `"${createHash('sha1').update(JSON.stringify(value)).digest('base64url')}"`
}

export function tag<T>(value: T): Tagged<T> {
  return { value, etag: etagOf(value) }
}

/**
 * A version token outlives every fill that could have seen the one before it: a fill runs
 * one database read, bounded by the statement timeout, and a minute covers any of those.
 */
const VERSION_MARGIN_MS = 60_000

// Stores a loaded value only if no write changed the resource (its version token) or its
// whole kind (the generation token) since the read began; both compared as seen then.
const FILL_SCRIPT = `
if (redis.call('GET', KEYS[2]) or '') == ARGV[1] and (redis.call('GET', KEYS[3]) or '') == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0`

// Gives each resource a new version token (first: a fill that read before it can no longer
// store) and drops its entry. KEYS: n version keys, then n entry keys; ARGV: TTL, n tokens.
const INVALIDATE_SCRIPT = `
local n = #KEYS / 2
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1])
  redis.call('DEL', KEYS[n + i])
end
return n`

interface Fill<T> {
  stale: boolean
  promise: Promise<Tagged<T> | undefined>
}

interface RedisEntry<T> {
  /** The generation the value was read under. */
  g: string
  /** When it was read (epoch ms): a copy taken from Redis lives only what remains of its TTL. */
  t: number
  e: string
  v: T
}

/** Scripts, not MULTI: a pipeline would bypass the Redis client's breaker and timeout. */
interface CacheCommands {
  readCacheFill(...args: (string | number)[]): Promise<number>
  readCacheInvalidate(numberOfKeys: number, ...args: (string | number)[]): Promise<number>
}

/**
 * Read-through caches for single resources: an LRU in this process, and in server mode Redis
 * behind it (cache-aside with a TTL), so an instance that has not read a resource yet finds
 * it without the database. Every write invalidates through `changed`, on every instance by
 * the broadcast. See docs/ARCHITECTURE.md, "Read cache", for the guarantees and their bounds.
 */
export function createReadCaches(options: ReadCacheOptions) {
  const enabled = options.ttlMs > 0 && options.maxEntries > 0
  const redis = enabled ? options.redis : null
  const dropLocal = new Map<string, (id: string | null) => void>()
  // A message holds lines `resource id`, or `resource *` for a whole kind.
  const broadcast: Broadcast = createBroadcast(
    redis,
    `${options.keyPrefix}:changed`,
    (message) => {
      for (const line of message.split('\n')) {
        const [resource = '', id = '*'] = line.split(' ')
        dropLocal.get(resource)?.(id === '*' ? null : id)
      }
    },
    options.log,
  )
  if (redis) {
    redis.defineCommand('readCacheFill', { numberOfKeys: 3, lua: FILL_SCRIPT })
    redis.defineCommand('readCacheInvalidate', { lua: INVALIDATE_SCRIPT })
  }
  const versionTtlMs = options.ttlMs + VERSION_MARGIN_MS
  // After a write could not reach Redis, its copy may be older than the database: it is not
  // read again until every entry written before that failure has expired.
  let redisDistrustedUntil = 0
  const redisUsable = () => redis !== null && performance.now() >= redisDistrustedUntil
  const distrustRedis = (error: unknown) => {
    redisDistrustedUntil = performance.now() + versionTtlMs
    options.log.warn({ err: error }, 'read cache: Redis missed an invalidation; not read for now')
  }

  function resource<T>(name: string): ResourceCache<T> {
    const onRead = options.onRead ?? (() => {})
    if (!enabled) {
      return {
        async read(id, load) {
          const value = await load(id)
          return value === undefined ? undefined : tag(value)
        },
        changed: async () => {},
        changedAll: async () => {},
      }
    }
    const local = new LRUCache<string, Tagged<T>>({ max: options.maxEntries, ttl: options.ttlMs })
    const fills = new Map<string, Fill<T>>()
    const entryKey = (id: string) => `${options.keyPrefix}:${name}:${id}`
    const versionKey = (id: string) => `${options.keyPrefix}:${name}:${id}:v`
    const generationKey = `${options.keyPrefix}:${name}:gen`

    function drop(id: string | null) {
      if (id === null) {
        for (const fill of fills.values()) fill.stale = true
        fills.clear()
        local.clear()
        return
      }
      const fill = fills.get(id)
      if (fill) {
        fill.stale = true
        fills.delete(id)
      }
      local.delete(id)
    }
    dropLocal.set(name, drop)

    /** The Redis copy and the tokens to compare at store time; null when Redis cannot say. */
    async function fromRedis(id: string) {
      if (!redis || !redisUsable()) return null
      try {
        const [entry, version, generation] = await redis.mget(
          entryKey(id),
          versionKey(id),
          generationKey,
        )
        const seen = { version: version ?? '', generation: generation ?? '' }
        if (entry === null || entry === undefined) return { seen, hit: undefined, old: false }
        const parsed = JSON.parse(entry) as RedisEntry<T>
        if (parsed.g !== seen.generation) return { seen, hit: undefined, old: true }
        const remainingMs = parsed.t + options.ttlMs - Date.now()
        if (remainingMs <= 0) return { seen, hit: undefined, old: false }
        return { seen, hit: { value: parsed.v, etag: parsed.e }, remainingMs, old: false }
      } catch {
        // An outage, a timeout or an open breaker: the database answers instead.
        return null
      }
    }

    async function load(id: string, loader: (id: string) => Promise<T | undefined>, fill: Fill<T>) {
      const shared = await fromRedis(id)
      if (shared?.hit) {
        if (!fill.stale) local.set(id, shared.hit, { ttl: shared.remainingMs })
        onRead(name, 'hit')
        return shared.hit
      }
      const value = await loader(id)
      const outdated = fill.stale || shared?.old === true
      onRead(name, outdated ? 'stale' : 'miss')
      if (value === undefined) return undefined
      const tagged = tag(value)
      if (fill.stale) return tagged
      local.set(id, tagged)
      if (shared && redis && redisUsable()) {
        const entry: RedisEntry<T> = {
          g: shared.seen.generation,
          t: Date.now(),
          e: tagged.etag,
          v: value,
        }
        ;(redis as unknown as CacheCommands)
          .readCacheFill(
            entryKey(id),
            versionKey(id),
            generationKey,
            shared.seen.version,
            shared.seen.generation,
            JSON.stringify(entry),
            options.ttlMs,
          )
          .catch(() => {}) // only a copy: the next miss tries again
      }
      return tagged
    }

    /** Redis first (awaited), then the other instances; a failure is logged, never thrown. */
    async function announce(write: (redis: Redis) => Promise<unknown>, message: string) {
      if (!redis) return
      const stored = write(redis).catch(distrustRedis)
      await Promise.all([stored, broadcast.publish(message)])
    }

    return {
      read(rawId, loader) {
        // UUIDs arrive in either case; the database and every writer use lower case.
        const id = rawId.toLowerCase()
        const hit = local.get(id)
        if (hit) {
          onRead(name, 'hit')
          return Promise.resolve(hit)
        }
        const pending = fills.get(id)
        if (pending) {
          onRead(name, 'miss')
          return pending.promise
        }
        const fill = { stale: false } as Fill<T>
        fills.set(id, fill)
        fill.promise = load(id, loader, fill).finally(() => {
          if (fills.get(id) === fill) fills.delete(id)
        })
        return fill.promise
      },

      async changed(rawIds) {
        if (rawIds.length === 0) return
        const ids = rawIds.map((id) => id.toLowerCase())
        for (const id of ids) drop(id)
        await announce(
          (redis) =>
            (redis as unknown as CacheCommands).readCacheInvalidate(
              ids.length * 2,
              ...ids.map(versionKey),
              ...ids.map(entryKey),
              versionTtlMs,
              ...ids.map(() => randomUUID()),
            ),
          ids.map((id) => `${name} ${id}`).join('\n'),
        )
      },

      async changedAll() {
        drop(null)
        // Entries of the old generation expire before this token does, so none comes back.
        await announce(
          (redis) => redis.set(generationKey, randomUUID(), 'PX', versionTtlMs),
          `${name} *`,
        )
      },
    }
  }

  return {
    resource,
    close: () => broadcast.close(),
  }
}

export type ReadCaches = ReturnType<typeof createReadCaches>
