import { randomInt } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PrivateRedis, startPrivateRedis } from '../../test/faults/servers.js'
import { buildTestApp, type TestApp, unique } from '../../test/helpers.js'
import { RateCounters } from './rate-limit-counters.js'

// A Redis of this file's own, in both modes: the tests count exact totals and freeze it.
let redis: PrivateRedis
let client: Redis

beforeAll(async () => {
  redis = await startPrivateRedis()
  client = new Redis(redis.url, { commandTimeout: 200, maxRetriesPerRequest: 1 })
  client.on('error', () => {}) // reconnects by itself after the tests stop the server
})
afterAll(async () => {
  client.disconnect()
  await redis.close()
})

const WINDOW_MS = 60_000

/** Counters reconciled only when a test says so (an interval longer than any test). */
function manualCounters(namespace: string) {
  return new RateCounters({
    redis: client,
    namespace,
    syncIntervalMs: 3_600_000,
    log: pino({ level: 'silent' }),
  })
}

/** Counts one request for `key` as the rate-limit plugin does; true when it is admitted. */
function admit(counters: RateCounters, key: string, max: number, windowMs = WINDOW_MS) {
  let result: { current: number; ttl: number } | undefined
  counters.incr(
    key,
    (_error, answer) => {
      result = answer
    },
    windowMs,
  )
  if (!result) throw new Error('the counters did not answer at once')
  return { admitted: result.current <= max, ...result }
}

describe('rate counters reconciled with Redis', () => {
  it('when two instances each count k requests between reconciliations, then together they admit at most max + k', async () => {
    const namespace = `test:${unique()}:`
    const [a, b] = [manualCounters(namespace), manualCounters(namespace)]
    const max = 20
    const perInterval = 3
    let admitted = 0
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < perInterval; i++) {
        if (admit(a, 'caller', max).admitted) admitted++
        if (admit(b, 'caller', max).admitted) admitted++
      }
      await Promise.all([a.sync(), b.sync()])
    }
    // Unreconciled, each would admit its own 20.
    expect(admitted).toBeGreaterThanOrEqual(max)
    expect(admitted).toBeLessThanOrEqual(max + perInterval)
    expect(Number(await client.get(`${namespace}caller`))).toBe(20 * 2 * perInterval)
    await Promise.all([a.close(), b.close()])
  })

  it('when an instance restarts, then the new one admits only until its first reconciliation', async () => {
    const namespace = `test:${unique()}:`
    const before = manualCounters(namespace)
    for (let i = 0; i < 10; i++) expect(admit(before, 'caller', 10).admitted).toBe(true)
    expect(admit(before, 'caller', 10).admitted).toBe(false)
    await before.close()

    const after = manualCounters(namespace)
    expect(admit(after, 'caller', 10).admitted).toBe(true)
    await after.sync()
    const refused = admit(after, 'caller', 10)
    expect(refused.admitted).toBe(false)
    expect(refused.current).toBe(13)
    // The window is the one Redis started, not a fresh one.
    expect(refused.ttl).toBeLessThanOrEqual(WINDOW_MS)
    await after.close()
  })

  it('when Redis is frozen, then each instance still limits on its own counts, and a timed-out batch is never counted twice', async () => {
    const namespace = `test:${unique()}:`
    const counters = manualCounters(namespace)
    redis.freeze()
    try {
      const answers = Array.from({ length: 4 }, () => admit(counters, 'caller', 3).admitted)
      expect(answers).toEqual([true, true, true, false])
      await counters.sync() // times out; frozen Redis runs the command once it thaws
      expect(admit(counters, 'caller', 3).current).toBe(5)
    } finally {
      redis.thaw()
    }
    await counters.sync()
    expect(Number(await client.get(`${namespace}caller`))).toBe(5)
    await counters.close()
  })

  it("when a window ends, then the key starts afresh, without the old window's unsent counts", async () => {
    const namespace = `test:${unique()}:`
    const counters = manualCounters(namespace)
    const windowMs = 300
    for (let i = 0; i < 3; i++) admit(counters, 'caller', 3, windowMs)
    await counters.sync()
    expect(admit(counters, 'caller', 3, windowMs).admitted).toBe(false)
    await sleep(windowMs + 50)
    const fresh = admit(counters, 'caller', 3, windowMs)
    expect(fresh).toMatchObject({ admitted: true, current: 1 })
    expect(fresh.ttl).toBe(windowMs)
    await counters.sync()
    expect(Number(await client.get(`${namespace}caller`))).toBe(1)
    await counters.close()
  })

  it('when Redis refuses connections, then the counts are kept and sent once it is back', async () => {
    const namespace = `test:${unique()}:`
    const counters = manualCounters(namespace)
    await redis.stop()
    try {
      for (let i = 0; i < 4; i++) admit(counters, 'caller', 3)
      await counters.sync()
    } finally {
      await redis.start()
    }
    while (client.status !== 'ready') await sleep(20)
    await counters.sync()
    expect(Number(await client.get(`${namespace}caller`))).toBe(4)
    await counters.close()
  })

  it('when a fail-closed limit asks for a store, then it counts in Redis on the request and fails when Redis cannot answer', async () => {
    const namespace = `test:${unique()}:`
    const counters = manualCounters(namespace)
    const exact = counters.child({ skipOnError: false })
    expect(exact).not.toBe(counters)
    expect(counters.child({ skipOnError: true })).toBe(counters)
    const incr = () =>
      new Promise<{ current: number; ttl: number } | undefined>((resolve, reject) =>
        exact.incr(
          'login',
          (error, result) => (error ? reject(error) : resolve(result)),
          WINDOW_MS,
        ),
      )
    expect((await incr())?.current).toBe(1)
    expect(Number(await client.get(`${namespace}login`))).toBe(1)
    redis.freeze()
    try {
      await expect(incr()).rejects.toThrow()
    } finally {
      redis.thaw()
    }
    await counters.close()
  })
})

describe('two API instances sharing one Redis', () => {
  const SYNC_MS = 50
  const MAX = 20
  const env = () => ({
    REDIS_URL: redis.url,
    RATE_LIMIT_MAX: String(MAX),
    RATE_LIMIT_SYNC_INTERVAL_MS: String(SYNC_MS),
  })
  let first: TestApp
  let second: TestApp

  beforeAll(async () => {
    first = await buildTestApp(env())
    second = await buildTestApp(env(), { database: first.database })
  })
  afterAll(async () => {
    await second?.close()
    await first?.close()
  })

  /** An unauthenticated /v1 call from `from`: the empty body answers 422 and creates nothing. */
  const register = (t: TestApp, from: string) =>
    t.app.inject({ method: 'POST', url: '/v1/auth/register', remoteAddress: from, payload: {} })
  const newAddress = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`

  it('when one caller alternates between them, then together they admit RATE_LIMIT_MAX, give or take one interval of the other instance', async () => {
    const from = newAddress()
    const pauseMs = 5
    let admitted = 0
    for (let i = 0; i < 100; i++) {
      const response = await register(i % 2 ? second : first, from)
      if (response.statusCode !== 429) admitted++
      await sleep(pauseMs)
    }
    // One instance sees at most ~SYNC_MS / (2 × pauseMs) requests of the other's per interval;
    // a loaded machine may stretch an interval, hence twice that. Unreconciled: 2 × MAX.
    expect(admitted).toBeGreaterThanOrEqual(MAX)
    expect(admitted).toBeLessThanOrEqual(MAX + (2 * SYNC_MS) / pauseMs)
  })

  it('when one instance has spent a budget, then the other answers 429 with Retry-After and RateLimit headers within one interval', async () => {
    const from = newAddress()
    for (let i = 0; i < MAX; i++) expect((await register(first, from)).statusCode).toBe(422)
    await sleep(3 * SYNC_MS)
    let refused = await register(second, from)
    // The second instance may admit what it sees before its first reconciliation of the key.
    for (let i = 0; refused.statusCode !== 429 && i < 10; i++) {
      await sleep(SYNC_MS)
      refused = await register(second, from)
    }
    expect(refused.statusCode).toBe(429)
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(String(refused.headers['ratelimit-limit'])).toBe(String(MAX))
    expect(String(refused.headers['ratelimit-remaining'])).toBe('0')
    const retryAfter = Number(refused.headers['retry-after'])
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(60)
    expect(refused.headers['ratelimit-reset']).toBe(refused.headers['retry-after'])
  })

  it('when an instance restarts, then its successor admits at most one interval of requests before honouring the spent budget', async () => {
    const from = newAddress()
    for (let i = 0; i < MAX; i++) expect((await register(second, from)).statusCode).toBe(422)
    // Closing sends the counts not yet reconciled.
    await second.close()
    second = await buildTestApp(env(), { database: first.database })
    const pauseMs = 5
    let admitted = 0
    for (let i = 0; i < 40; i++) {
      if ((await register(second, from)).statusCode !== 429) admitted++
      await sleep(pauseMs)
    }
    expect(admitted).toBeLessThanOrEqual((2 * SYNC_MS) / pauseMs)
  })
})
