import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { unique } from '../../../../test/helpers.js'
import {
  createMemoryPredictionCache,
  createPredictionCache,
  createRedisPredictionCache,
  type PredictionCacheLogger,
  predictionCacheKey,
} from './prediction-cache.js'

const REDIS_URL = process.env.REDIS_URL

function fakeClock(start = 1_000_000) {
  let time = start
  return {
    now: () => time,
    advance: (ms: number) => {
      time += ms
    },
  }
}

function recordingLogger() {
  const warnings: { obj: object; msg: string }[] = []
  const logger: PredictionCacheLogger = { warn: (obj, msg) => void warnings.push({ obj, msg }) }
  return { logger, warnings }
}

/** Nothing listens on port 1: every command fails without waiting for a connection. */
function unreachableRedis(): Redis {
  const redis = new Redis('redis://127.0.0.1:1', {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
  })
  redis.on('error', () => {}) // ECONNREFUSED on every reconnect attempt
  return redis
}

describe('predictionCacheKey', () => {
  it('when the same model, version and input are hashed twice, then the keys are equal SHA-256 hex', () => {
    const key = predictionCacheKey('iris', '1', '{"x":[1,2]}')
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    expect(predictionCacheKey('iris', '1', '{"x":[1,2]}')).toBe(key)
  })

  it('when the model, the version or the input differs, then the key differs', () => {
    const key = predictionCacheKey('iris', '1', '{"x":[1,2]}')
    expect(predictionCacheKey('wine', '1', '{"x":[1,2]}')).not.toBe(key)
    expect(predictionCacheKey('iris', '2', '{"x":[1,2]}')).not.toBe(key)
    expect(predictionCacheKey('iris', '1', '{"x":[1,3]}')).not.toBe(key)
  })

  it('when parts would concatenate to the same string, then the keys still differ', () => {
    expect(predictionCacheKey('a', 'bc', 'd')).not.toBe(predictionCacheKey('ab', 'c', 'd'))
    expect(predictionCacheKey('m', '1', '2x')).not.toBe(predictionCacheKey('m', '12', 'x'))
    expect(predictionCacheKey('m', '', 'v')).not.toBe(predictionCacheKey('m', 'v', ''))
  })
})

describe('memory prediction cache', () => {
  it('when an answer was stored, then a get returns an equal answer', async () => {
    const cache = createMemoryPredictionCache({ ttlMs: 1000, maxEntries: 10 })
    const answer = { label: 'setosa', scores: [0.9, 0.05, 0.05] }
    await cache.set('k', answer)
    expect(await cache.get('k')).toEqual(answer)
    expect(cache.kind).toBe('memory')
  })

  it('when nothing was stored under a key, then a get misses', async () => {
    const cache = createMemoryPredictionCache({ ttlMs: 1000, maxEntries: 10 })
    await cache.set('k', 1)
    expect(await cache.get('other')).toBeUndefined()
  })

  it('when the TTL has passed, then the entry misses and stays gone', async () => {
    const clock = fakeClock()
    const cache = createMemoryPredictionCache({ ttlMs: 1000, maxEntries: 10, now: clock.now })
    await cache.set('k', 'answer')
    clock.advance(999)
    expect(await cache.get('k')).toBe('answer')
    clock.advance(1)
    expect(await cache.get('k')).toBeUndefined()
    clock.advance(-500) // a deleted entry does not come back, even if the clock did
    expect(await cache.get('k')).toBeUndefined()
  })

  it('when maxEntries is exceeded, then the least recently used entry goes and a get refreshes recency', async () => {
    const cache = createMemoryPredictionCache({ ttlMs: 1000, maxEntries: 3 })
    await cache.set('a', 1)
    await cache.set('b', 2)
    await cache.set('c', 3)
    expect(await cache.get('a')).toBe(1) // 'b' is now the least recently used
    await cache.set('d', 4)
    expect(await cache.get('b')).toBeUndefined()
    await cache.set('e', 5) // evicts 'c': 'a' and 'd' were used since
    expect(await cache.get('c')).toBeUndefined()
    expect([await cache.get('a'), await cache.get('d'), await cache.get('e')]).toEqual([1, 4, 5])
  })

  it('when a caller mutates a returned answer or the value it stored, then the cache is unchanged', async () => {
    const cache = createMemoryPredictionCache({ ttlMs: 1000, maxEntries: 10 })
    const stored = { label: 'setosa', scores: [0.9, 0.1] }
    await cache.set('k', stored)
    stored.scores.push(99)
    const first = (await cache.get('k')) as typeof stored
    first.label = 'changed'
    first.scores[0] = -1
    expect(await cache.get('k')).toEqual({ label: 'setosa', scores: [0.9, 0.1] })
  })

  it('when an answer is not JSON-serialisable, then set resolves, logs once and the key misses', async () => {
    const { logger, warnings } = recordingLogger()
    const cache = createMemoryPredictionCache({ ttlMs: 1000, maxEntries: 10, logger })
    await expect(cache.set('k', { n: 1n })).resolves.toBeUndefined()
    await cache.set('k', { n: 2n })
    expect(await cache.get('k')).toBeUndefined()
    expect(warnings).toHaveLength(1)
  })

  it('when cleared, then every entry misses', async () => {
    const cache = createMemoryPredictionCache({ ttlMs: 1000, maxEntries: 10 })
    await cache.set('a', 1)
    await cache.set('b', 2)
    await cache.clear()
    expect([await cache.get('a'), await cache.get('b')]).toEqual([undefined, undefined])
  })

  it('when the TTL or maxEntries is not a positive integer, then creating the cache throws', () => {
    expect(() => createMemoryPredictionCache({ ttlMs: 0, maxEntries: 10 })).toThrow(RangeError)
    expect(() => createMemoryPredictionCache({ ttlMs: 1.5, maxEntries: 10 })).toThrow(RangeError)
    expect(() => createMemoryPredictionCache({ ttlMs: 1000, maxEntries: 0 })).toThrow(RangeError)
  })
})

describe('createPredictionCache', () => {
  it('when ttlMs is 0, then there is no cache', () => {
    expect(createPredictionCache({ redis: null, ttlMs: 0, maxEntries: 10 })).toBeNull()
  })

  it('when there is no Redis, then the cache is in memory; with one, in Redis', () => {
    expect(createPredictionCache({ redis: null, ttlMs: 1000, maxEntries: 10 })?.kind).toBe('memory')
    const redis = unreachableRedis()
    try {
      expect(createPredictionCache({ redis, ttlMs: 1000, maxEntries: 10 })?.kind).toBe('redis')
    } finally {
      redis.disconnect()
    }
  })
})

describe('redis prediction cache when Redis is unreachable', () => {
  let redis: Redis
  beforeAll(() => {
    redis = unreachableRedis()
  })
  afterAll(() => redis.disconnect())

  it('then gets miss, sets resolve and the failure is logged once per interval', async () => {
    const { logger, warnings } = recordingLogger()
    const clock = fakeClock()
    const cache = createRedisPredictionCache(redis, { ttlMs: 1000, logger, now: clock.now })
    await expect(cache.set('k', { label: 'setosa' })).resolves.toBeUndefined()
    expect(await cache.get('k')).toBeUndefined()
    expect(await cache.get('k')).toBeUndefined()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]?.obj).toMatchObject({ store: 'redis', operation: 'set' })

    clock.advance(30_000)
    expect(await cache.get('k')).toBeUndefined()
    expect(warnings).toHaveLength(2)
  })
})

// Needs a Redis server: `npm run test:services` always provides REDIS_URL; a plain run
// exercises these too when REDIS_URL is set in the environment.
describe.runIf(REDIS_URL)('redis prediction cache against a real Redis', () => {
  let redis: Redis
  // Parallel test files and earlier runs share this Redis: every key of this run is its own.
  const prefix = `orderflow:predict:test:${unique()}:`
  beforeAll(() => {
    redis = new Redis(REDIS_URL as string, { maxRetriesPerRequest: 1 })
  })
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })

  it('when an answer was stored, then a get returns it, kept under the prefix with its TTL', async () => {
    const cache = createRedisPredictionCache(redis, { ttlMs: 10_000, prefix })
    const key = predictionCacheKey('iris', '1', '{"x":[5.1,3.5,1.4,0.2]}')
    const answer = { label: 'setosa', scores: [0.9, 0.05, 0.05] }
    await cache.set(key, answer)
    expect(await cache.get(key)).toEqual(answer)
    expect(JSON.parse((await redis.get(prefix + key)) as string)).toEqual(answer)
    const ttl = await redis.pttl(prefix + key)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(10_000)
  })

  it('when nothing was stored under a key, then a get misses', async () => {
    const cache = createRedisPredictionCache(redis, { ttlMs: 10_000, prefix })
    expect(await cache.get(predictionCacheKey('iris', '1', 'never stored'))).toBeUndefined()
  })

  it('when the TTL has passed, then the entry misses', async () => {
    const cache = createRedisPredictionCache(redis, { ttlMs: 50, prefix })
    await cache.set('short-lived', 'answer')
    expect(await cache.get('short-lived')).toBe('answer')
    await sleep(150)
    expect(await cache.get('short-lived')).toBeUndefined()
  })

  it('when cleared, then entries stay: other instances share them', async () => {
    const cache = createRedisPredictionCache(redis, { ttlMs: 10_000, prefix })
    await cache.set('shared', 1)
    await cache.clear()
    expect(await cache.get('shared')).toBe(1)
  })
})
