import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PrivateRedis, startPrivateRedis } from '../../test/faults/servers.js'
import { buildTestApp, createTestUser, type TestApp } from '../../test/helpers.js'
import { connectRedis, type GuardedRedis } from './redis.js'

// A Redis of this file's own: the tests freeze and stop it.
const COMMAND_TIMEOUT_MS = 200
const BREAKER_RESET_MS = 600
let redis: PrivateRedis

beforeAll(async () => {
  redis = await startPrivateRedis()
})
afterAll(async () => {
  await redis.close()
})

function connect(): GuardedRedis {
  return connectRedis(
    {
      url: redis.url,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      breakerResetMs: BREAKER_RESET_MS,
      connectTimeoutMs: 1000,
    },
    pino({ level: 'silent' }),
  )
}

async function ready(client: GuardedRedis) {
  while (client.status !== 'ready') await sleep(10)
}

/** How long `work` took to settle, and the error it failed with, if it did. */
async function timed(work: () => Promise<unknown>) {
  const started = performance.now()
  const error = await work().then(
    () => undefined,
    (reason: unknown) => reason as Error & { code?: string },
  )
  return { ms: performance.now() - started, failed: error !== undefined, error }
}

describe('the guarded Redis client', () => {
  it('when Redis is frozen, then a command fails after the command timeout instead of waiting for the socket', async () => {
    const client = connect()
    await ready(client)
    redis.freeze()
    try {
      const { ms, failed } = await timed(() => client.get('orderflow:test:frozen'))
      // It failed while Redis was still frozen, so the timeout and not an answer ended it.
      expect(failed).toBe(true)
      expect(ms).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_MS - 20)
    } finally {
      redis.thaw()
      client.disconnect()
    }
  })

  it('when most commands fail, then the breaker opens and fails commands at once; after the reset time one goes through and closes it', async () => {
    const client = connect()
    await ready(client)
    redis.freeze()
    try {
      await Promise.allSettled(Array.from({ length: 6 }, (_, i) => client.get(`k${i}`)))
      expect(client.breakerState()).toBe('open')
      // Refused by the open breaker itself, not after a command timeout on the frozen Redis.
      const { error } = await timed(() => client.get('orderflow:test:open'))
      expect(error?.code).toBe('EOPENBREAKER')
    } finally {
      redis.thaw()
    }
    await sleep(BREAKER_RESET_MS + 50)
    await client.set('orderflow:test:back', '1')
    expect(client.breakerState()).toBe('closed')
    expect(await client.get('orderflow:test:back')).toBe('1')
    client.disconnect()
  })

  it('when Redis answers with a reply error, then it counts as an answer and never opens the breaker', async () => {
    const client = connect()
    await ready(client)
    await client.set('orderflow:test:string', 'x')
    const failures = await Promise.allSettled(
      Array.from({ length: 10 }, () => client.lpush('orderflow:test:string', 'y')),
    )
    expect(failures.every((outcome) => outcome.status === 'rejected')).toBe(true)
    expect(client.breakerState()).toBe('closed')
    client.disconnect()
  })
})

describe('the API over a frozen Redis', () => {
  let t: TestApp
  let user: Awaited<ReturnType<typeof createTestUser>>

  beforeAll(async () => {
    t = await buildTestApp({
      REDIS_URL: redis.url,
      REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
      REDIS_BREAKER_RESET_MS: String(BREAKER_RESET_MS),
    })
    user = await createTestUser(t)
  })
  afterAll(async () => {
    redis.thaw()
    await t.close()
  })

  it('when Redis is frozen, then /v1 requests are served unthrottled (fail open), logins answer 503 (fail closed) and /ready names Redis, none of them waiting for it', async () => {
    redis.freeze()
    try {
      for (let round = 0; round < 3; round++) {
        const [products, anonymous, token, ready] = await Promise.all([
          t.app.inject({ url: '/v1/products', headers: user.headers }),
          t.app.inject({ url: '/v1/products' }),
          t.app.inject({
            method: 'POST',
            url: '/v1/auth/token',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            payload: `grant_type=password&username=${encodeURIComponent(user.email)}&password=${encodeURIComponent(user.password)}`,
          }),
          t.app.inject({ url: '/ready' }),
        ])
        expect(products.statusCode).toBe(200)
        expect(anonymous.statusCode).toBe(401)
        expect(token.statusCode).toBe(503)
        expect(token.headers['content-type']).toContain('application/problem+json')
        expect(ready.statusCode).toBe(503)
        expect(ready.json().checks.redis).toBe('failing')
        // All of them answered while Redis was still frozen: each gave up on it in time.
      }
    } finally {
      redis.thaw()
    }
    await sleep(BREAKER_RESET_MS + 50)
    // The first call after the reset is the breaker's probe; the job queue's own connection
    // may still be answering what piled up while frozen, so readiness gets a moment.
    let ready = await t.app.inject({ url: '/ready' })
    for (let attempt = 0; attempt < 20 && ready.statusCode !== 200; attempt++) {
      await sleep(100)
      ready = await t.app.inject({ url: '/ready' })
    }
    expect(ready.statusCode, ready.body).toBe(200)
    const token = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=password&username=${encodeURIComponent(user.email)}&password=${encodeURIComponent(user.password)}`,
    })
    expect(token.statusCode).toBe(200)
  })
})
