import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * Answers already computed for an exact (model, version, input), so a repeated request skips
 * the batcher and the graph. Strictly an optimisation: a store that fails or is away reads as
 * a miss and the request is served by the model, as it would be with the cache off.
 */
export interface PredictionCache {
  readonly kind: 'memory' | 'redis'
  /**
   * The cached answer, or undefined on a miss, an expired entry or a store error (a store
   * error is never a request failure).
   */
  get(key: string): Promise<unknown | undefined>
  /** Stores a JSON-serialisable answer for the cache's TTL; errors are swallowed like get's. */
  set(key: string, value: unknown): Promise<void>
  /** Drops everything this process holds; a no-op for Redis, which other instances share. */
  clear(): Promise<void>
}

export interface PredictionCacheLogger {
  warn(obj: object, msg: string): void
}

export interface MemoryPredictionCacheOptions {
  ttlMs: number
  maxEntries: number
  now?: () => number
  logger?: PredictionCacheLogger
}

export interface RedisPredictionCacheOptions {
  ttlMs: number
  /** Namespaces the keys in a Redis shared with other data. */
  prefix?: string
  logger?: PredictionCacheLogger
  now?: () => number
}

export interface PredictionCacheOptions {
  redis: Redis | null
  /** 0 turns the cache off. */
  ttlMs: number
  /** Bounds the in-process cache; unused with Redis, which bounds itself. */
  maxEntries: number
  /** Redis: the keys' prefix (`<REDIS_PREFIX>:predict:`). */
  prefix?: string
  logger?: PredictionCacheLogger
}

export const DEFAULT_PREDICTION_CACHE_PREFIX = 'orderflow:predict:'

/** A store that keeps failing would otherwise log once per request. */
const WARN_INTERVAL_MS = 30_000

/**
 * The cache key of one prediction: the parts are JSON-array encoded before hashing, so no
 * two different (model, version, input) triples can run together into the same string.
 */
export function predictionCacheKey(model: string, version: string, canonicalInput: string): string {
  return createHash('sha256')
    .update(JSON.stringify([model, version, canonicalInput]))
    .digest('hex')
}

/**
 * A per-process LRU cache. Answers are held as JSON text, as Redis holds them: each hit
 * parses a fresh copy, so a caller that mutates an answer (or the value it stored) cannot
 * change what the next request gets, and both stores accept and return exactly the same values.
 */
export function createMemoryPredictionCache({
  ttlMs,
  maxEntries,
  now = Date.now,
  logger,
}: MemoryPredictionCacheOptions): PredictionCache {
  assertTtl(ttlMs)
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`)
  }
  const entries = new Map<string, { json: string; expiresAt: number }>()
  const warn = throttledWarn('memory', now, logger)

  return {
    kind: 'memory',

    async get(key) {
      const entry = entries.get(key)
      if (!entry) return undefined
      entries.delete(key)
      if (entry.expiresAt <= now()) return undefined
      entries.set(key, entry) // re-inserted last: Map order is the recency order
      return JSON.parse(entry.json)
    },

    async set(key, value) {
      let json: string | undefined
      try {
        json = JSON.stringify(value)
      } catch (error) {
        warn(error, 'set')
        return
      }
      if (json === undefined) return // undefined (or a function) would read back as a miss
      entries.delete(key)
      entries.set(key, { json, expiresAt: now() + ttlMs })
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string)
    },

    async clear() {
      entries.clear()
    },
  }
}

/**
 * A cache shared by every instance through Redis, where each answer expires by itself
 * (`SET ... PX`). Commands go through the client as configured: with the offline queue off, as
 * the app configures it, an outage fails each command at once instead of holding the request.
 */
export function createRedisPredictionCache(
  redis: Redis,
  {
    ttlMs,
    prefix = DEFAULT_PREDICTION_CACHE_PREFIX,
    logger,
    now = Date.now,
  }: RedisPredictionCacheOptions,
): PredictionCache {
  assertTtl(ttlMs)
  const warn = throttledWarn('redis', now, logger)

  return {
    kind: 'redis',

    async get(key) {
      try {
        const json = await redis.get(prefix + key)
        return json === null ? undefined : JSON.parse(json)
      } catch (error) {
        warn(error, 'get')
        return undefined
      }
    },

    async set(key, value) {
      try {
        const json = JSON.stringify(value)
        if (json === undefined) return
        await redis.set(prefix + key, json, 'PX', ttlMs)
      } catch (error) {
        warn(error, 'set')
      }
    },

    async clear() {},
  }
}

/** The cache the configuration asks for: none when `ttlMs` is 0, Redis when there is one. */
export function createPredictionCache({
  redis,
  ttlMs,
  maxEntries,
  prefix,
  logger,
}: PredictionCacheOptions): PredictionCache | null {
  if (ttlMs === 0) return null
  return redis
    ? createRedisPredictionCache(redis, { ttlMs, prefix, logger })
    : createMemoryPredictionCache({ ttlMs, maxEntries, logger })
}

function assertTtl(ttlMs: number): void {
  // Redis rejects a non-integer PX; a zero TTL means "off" and is handled by the caller.
  if (!Number.isInteger(ttlMs) || ttlMs < 1) {
    throw new RangeError(`ttlMs must be a positive integer, got ${ttlMs}`)
  }
}

function throttledWarn(
  store: PredictionCache['kind'],
  now: () => number,
  logger: PredictionCacheLogger | undefined,
): (error: unknown, operation: 'get' | 'set') => void {
  let lastWarnAt = Number.NEGATIVE_INFINITY
  return (error, operation) => {
    if (!logger || now() - lastWarnAt < WARN_INTERVAL_MS) return
    lastWarnAt = now()
    logger.warn(
      { err: error, store, operation },
      'prediction cache failing; serving predictions without it',
    )
  }
}
