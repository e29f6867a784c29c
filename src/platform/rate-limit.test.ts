import { randomInt } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LightMyRequestResponse } from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  SERVICES_MODE,
  type TestApp,
  testConfig,
  unique,
} from '../../test/helpers.js'
import { type App, buildApp } from '../app.js'
import { hashPassword } from '../modules/auth/passwords.js'
import { createUserRepository } from '../modules/users/repository.js'

// Every test calls from addresses and as users of its own: in services mode the counters
// live in one Redis shared by every test file, and outlive the test by their window.

/** A client address no other test uses. */
function newAddress(): string {
  return `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`
}

/** A /64 of its own, as an IPv6 client or its provider holds one. */
function newPrefix(): string {
  return `2001:db8:${randomInt(0x10000).toString(16)}:${randomInt(0x10000).toString(16)}`
}

/** A user made straight in the database, without a login that would spend login budget. */
async function newUser(t: TestApp) {
  const email = `limited-${unique().toLowerCase()}@example.com`
  const password = `pw-${unique()}-long-enough`
  await createUserRepository(t.database.db).insert({
    email,
    fullName: 'Rate limited',
    role: 'user',
    passwordHash: await hashPassword(password),
  })
  return { email, password }
}

function requestToken(
  app: App,
  from: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
) {
  return app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    remoteAddress: from,
    payload: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  })
}

const passwordGrant = (username: string, password = 'not the password') => ({
  grant_type: 'password',
  username,
  password,
})

/** An unauthenticated /v1 call: the empty body answers 422 and creates nothing. */
function register(app: App, from: string, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/v1/auth/register',
    remoteAddress: from,
    payload: {},
    headers,
  })
}

function expectTooManyRequests(response: LightMyRequestResponse, windowSeconds = 60) {
  expect(response.statusCode).toBe(429)
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
  expect(response.json()).toMatchObject({ status: 429, code: 'TOO_MANY_REQUESTS' })
  const retryAfter = Number(response.headers['retry-after'])
  expect(retryAfter).toBeGreaterThan(0)
  expect(retryAfter).toBeLessThanOrEqual(windowSeconds)
}

describe('the general limit on /v1 routes', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ RATE_LIMIT_MAX: '3' })
  })
  afterAll(() => t.close())

  it('when a caller is within RATE_LIMIT_MAX, then each answer carries the RateLimit headers', async () => {
    const user = await createTestUser(t)
    const remaining: string[] = []
    for (let i = 0; i < 3; i++) {
      const response = await t.app.inject({ url: '/v1/users/me', headers: user.headers })
      expect(response.statusCode).toBe(200)
      expect(String(response.headers['ratelimit-limit'])).toBe('3')
      expect(Number(response.headers['ratelimit-reset'])).toBeGreaterThan(0)
      expect(Number(response.headers['ratelimit-reset'])).toBeLessThanOrEqual(60)
      remaining.push(String(response.headers['ratelimit-remaining']))
    }
    expect(remaining).toEqual(['2', '1', '0'])
  })

  it('when a caller goes over RATE_LIMIT_MAX, then answers 429 problem+json with Retry-After and RateLimit headers', async () => {
    const user = await createTestUser(t)
    for (let i = 0; i < 3; i++) {
      expect((await t.app.inject({ url: '/v1/users/me', headers: user.headers })).statusCode).toBe(
        200,
      )
    }
    const refused = await t.app.inject({ url: '/v1/users/me', headers: user.headers })
    expectTooManyRequests(refused)
    expect(String(refused.headers['ratelimit-limit'])).toBe('3')
    expect(String(refused.headers['ratelimit-remaining'])).toBe('0')
    expect(refused.headers['ratelimit-reset']).toBe(refused.headers['retry-after'])
    expect(refused.json().request_id).toBe(refused.headers['x-request-id'])
  })

  it('when two users call from one address, then each has a budget of their own', async () => {
    const from = newAddress()
    const [first, second] = [await createTestUser(t), await createTestUser(t)]
    const me = (user: typeof first) =>
      t.app.inject({ url: '/v1/users/me', headers: user.headers, remoteAddress: from })
    for (let i = 0; i < 3; i++) expect((await me(first)).statusCode).toBe(200)
    expectTooManyRequests(await me(first))

    const other = await me(second)
    expect(other.statusCode).toBe(200)
    expect(String(other.headers['ratelimit-remaining'])).toBe('2')
    // Nor do the users' requests spend the address's own (unauthenticated) budget.
    expect(String((await register(t.app, from)).headers['ratelimit-remaining'])).toBe('2')
  })

  it('when a caller uses an API key, then its requests count against the key, apart from its owner', async () => {
    const owner = await createTestUser(t)
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/api-keys',
      headers: owner.headers,
      payload: { name: 'limited' },
    })
    expect(created.statusCode).toBe(201)
    const byKey = { 'x-api-key': created.json().key as string }
    for (let i = 0; i < 3; i++) {
      expect((await t.app.inject({ url: '/v1/users/me', headers: byKey })).statusCode).toBe(200)
    }
    expectTooManyRequests(await t.app.inject({ url: '/v1/users/me', headers: byKey }))

    // The owner's bearer budget has paid only for creating the key.
    const asOwner = await t.app.inject({ url: '/v1/users/me', headers: owner.headers })
    expect(asOwner.statusCode).toBe(200)
    expect(String(asOwner.headers['ratelimit-remaining'])).toBe('1')
  })

  it('when unauthenticated callers call, then they are limited by client address', async () => {
    const [from, elsewhere] = [newAddress(), newAddress()]
    for (let i = 0; i < 3; i++) expect((await register(t.app, from)).statusCode).toBe(422)
    expectTooManyRequests(await register(t.app, from))
    expect((await register(t.app, elsewhere)).statusCode).toBe(422)
  })

  it('when an address keeps sending bad credentials, then it is limited per address', async () => {
    const [from, elsewhere] = [newAddress(), newAddress()]
    const badKey = (remoteAddress: string) =>
      t.app.inject({
        url: '/v1/products',
        remoteAddress,
        headers: { 'x-api-key': 'ofk_00000000_not-a-real-key' },
      })
    for (let i = 0; i < 3; i++) expect((await badKey(from)).statusCode).toBe(401)
    expectTooManyRequests(await badKey(from))
    expect((await badKey(elsewhere)).statusCode).toBe(401)
  })

  it('when IPv6 callers change address within one /64, then they share one budget', async () => {
    const prefix = newPrefix()
    for (let i = 1; i <= 3; i++) {
      expect((await register(t.app, `${prefix}::${i}`)).statusCode).toBe(422)
    }
    expectTooManyRequests(await register(t.app, `${prefix}:1:2:3:4`))
    expect((await register(t.app, `${newPrefix()}::1`)).statusCode).toBe(422)
  })

  it('when an IPv4 caller arrives as an IPv4-mapped IPv6 address, then it shares the IPv4 budget', async () => {
    const from = newAddress()
    for (let i = 0; i < 3; i++) expect((await register(t.app, from)).statusCode).toBe(422)
    expectTooManyRequests(await register(t.app, `::ffff:${from}`))
  })

  it('when the path is percent-encoded, then the route is still limited', async () => {
    const from = newAddress()
    const encoded = () =>
      t.app.inject({ method: 'POST', url: '/%761/auth/register', remoteAddress: from, payload: {} })
    for (let i = 0; i < 3; i++) expect((await encoded()).statusCode).toBe(422)
    expectTooManyRequests(await encoded())
  })

  it('when a caller rotates X-Forwarded-For without TRUST_PROXY, then the header is ignored and the limit holds', async () => {
    const from = newAddress()
    const spoofed = () => register(t.app, from, { 'x-forwarded-for': newAddress() })
    for (let i = 0; i < 3; i++) expect((await spoofed()).statusCode).toBe(422)
    expectTooManyRequests(await spoofed())
  })

  it('when the token endpoint is called, then it spends the login limits, not the general one', async () => {
    const from = newAddress()
    for (let i = 0; i < 5; i++) {
      const response = await requestToken(t.app, from, passwordGrant(`${unique()}@example.com`))
      expect(response.statusCode).toBe(400)
    }
    expect(String((await register(t.app, from)).headers['ratelimit-remaining'])).toBe('2')
  })

  it.each(['/health', '/ready', '/metrics'])(
    'when %s is polled beyond RATE_LIMIT_MAX, then it is never limited',
    async (url) => {
      const from = newAddress()
      for (let i = 0; i < 5; i++) {
        const response = await t.app.inject({ url, remoteAddress: from })
        expect(response.statusCode).toBe(200)
        expect(response.headers['ratelimit-limit']).toBeUndefined()
      }
    },
  )
})

describe('the window', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({
      RATE_LIMIT_MAX: '1',
      RATE_LIMIT_WINDOW_MS: '1000',
      LOGIN_RATE_LIMIT_MAX: '1',
      LOGIN_RATE_LIMIT_WINDOW_MS: '1000',
    })
  })
  afterAll(() => t.close())

  it('when the window has passed, then a limited caller is served again by both limits', async () => {
    const from = newAddress()
    // A refresh grant hashes no password, so both requests land well inside the window.
    const refresh = () =>
      requestToken(t.app, from, { grant_type: 'refresh_token', refresh_token: unique() })
    expect((await register(t.app, from)).statusCode).toBe(422)
    expectTooManyRequests(await register(t.app, from), 1)
    expect((await refresh()).statusCode).toBe(400)
    expectTooManyRequests(await refresh(), 1)

    await sleep(1100)
    expect((await register(t.app, from)).statusCode).toBe(422)
    expect((await refresh()).statusCode).toBe(400)
  })
})

describe('the login limits of the token endpoint', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ LOGIN_RATE_LIMIT_MAX: '3' })
  })
  afterAll(() => t.close())

  it('when one address makes LOGIN_RATE_LIMIT_MAX attempts, then its next answers 429 with Retry-After, before the password is checked', async () => {
    const user = await newUser(t)
    const from = newAddress()
    for (let i = 0; i < 3; i++) {
      const response = await requestToken(t.app, from, passwordGrant(`${unique()}@example.com`))
      expect(response.statusCode).toBe(400)
      expect(response.json().error).toBe('invalid_grant')
      expect(String(response.headers['ratelimit-remaining'])).toBe(String(2 - i))
    }
    // The right password would answer 200 had it been checked.
    const refused = await requestToken(t.app, from, passwordGrant(user.email, user.password))
    expectTooManyRequests(refused)
    expect(refused.json().access_token).toBeUndefined()
    expectTooManyRequests(await requestToken(t.app, from, passwordGrant(user.email)))
  })

  it('when one username is tried LOGIN_RATE_LIMIT_MAX times from several addresses, then it answers 429 from any address, even with the right password', async () => {
    const target = await newUser(t)
    const bystander = await newUser(t)
    const variants = [target.email, target.email.toUpperCase(), ` ${target.email} `]
    for (const username of variants) {
      const response = await requestToken(t.app, newAddress(), passwordGrant(username))
      expect(response.statusCode).toBe(400)
    }
    const fresh = newAddress()
    expectTooManyRequests(
      await requestToken(t.app, fresh, passwordGrant(target.email, target.password)),
    )
    // The fresh address and every other username keep their budgets.
    const other = await requestToken(
      t.app,
      fresh,
      passwordGrant(bystander.email, bystander.password),
    )
    expect(other.statusCode).toBe(200)
  })

  it('when an address sends refresh tokens beyond the limit, then it answers 429 too', async () => {
    const from = newAddress()
    const refresh = () =>
      requestToken(t.app, from, { grant_type: 'refresh_token', refresh_token: unique() })
    for (let i = 0; i < 3; i++) expect((await refresh()).statusCode).toBe(400)
    expectTooManyRequests(await refresh())
  })

  it('when the path is percent-encoded, then the login limits still apply', async () => {
    const from = newAddress()
    const encoded = () =>
      t.app.inject({
        method: 'POST',
        url: '/%761/auth/token',
        remoteAddress: from,
        payload: passwordGrant(`${unique()}@example.com`),
      })
    for (let i = 0; i < 3; i++) expect((await encoded()).statusCode).toBe(400)
    expectTooManyRequests(await encoded())
  })

  it('when a caller rotates X-Forwarded-For without TRUST_PROXY, then the header is ignored and the limit holds', async () => {
    const from = newAddress()
    const spoofed = () =>
      requestToken(t.app, from, passwordGrant(`${unique()}@example.com`), {
        'x-forwarded-for': newAddress(),
      })
    for (let i = 0; i < 3; i++) expect((await spoofed()).statusCode).toBe(400)
    expectTooManyRequests(await spoofed())
  })

  // Embedded mode keeps its counters in process memory, with no Redis to inspect.
  it.runIf(SERVICES_MODE)(
    'when a username is counted in Redis, then no key holds the username itself',
    async () => {
      const username = `${unique().toLowerCase()}@example.com`
      expect((await requestToken(t.app, newAddress(), passwordGrant(username))).statusCode).toBe(
        400,
      )
      const redis = new Redis(process.env.REDIS_URL as string)
      try {
        expect(await redis.keys(`*${username}*`)).toEqual([])
      } finally {
        await redis.quit()
      }
    },
  )
})

describe('with TRUST_PROXY=1 (one proxy in front)', () => {
  let t: TestApp
  // Every request arrives from the proxy, which appends the client's address to X-Forwarded-For.
  const proxy = newAddress()
  const viaProxy = (forwardedFor: string) => ({ 'x-forwarded-for': forwardedFor })
  beforeAll(async () => {
    t = await buildTestApp({ TRUST_PROXY: '1', RATE_LIMIT_MAX: '2', LOGIN_RATE_LIMIT_MAX: '2' })
  })
  afterAll(() => t.close())

  it('when clients call through the proxy, then each is limited by the address the proxy reports', async () => {
    const [client, neighbour] = [newAddress(), newAddress()]
    for (let i = 0; i < 2; i++) {
      expect((await register(t.app, proxy, viaProxy(client))).statusCode).toBe(422)
    }
    expectTooManyRequests(await register(t.app, proxy, viaProxy(client)))
    expect((await register(t.app, proxy, viaProxy(neighbour))).statusCode).toBe(422)
  })

  it('when a client prepends its own X-Forwarded-For entries, then only the one the proxy appended counts', async () => {
    const client = newAddress()
    const spoofed = () => register(t.app, proxy, viaProxy(`${newAddress()}, ${client}`))
    for (let i = 0; i < 2; i++) expect((await spoofed()).statusCode).toBe(422)
    expectTooManyRequests(await spoofed())
  })

  it('when clients log in through the proxy, then the login limit is per forwarded address', async () => {
    const [client, neighbour] = [newAddress(), newAddress()]
    const attempt = (from: string) =>
      requestToken(t.app, proxy, passwordGrant(`${unique()}@example.com`), viaProxy(from))
    for (let i = 0; i < 2; i++) expect((await attempt(client)).statusCode).toBe(400)
    expectTooManyRequests(await attempt(client))
    expect((await attempt(neighbour)).statusCode).toBe(400)
  })
})

describe('when the Redis counter store is unreachable', () => {
  let healthy: TestApp
  let outage: App
  let deadRedis: Redis
  const logLines: string[] = []
  beforeAll(async () => {
    healthy = await buildTestApp()
    deadRedis = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
    })
    deadRedis.on('error', () => {}) // ECONNREFUSED on every reconnect attempt
    outage = await buildApp(testConfig({ LOG_LEVEL: 'error' }), {
      database: healthy.database,
      redis: deadRedis,
      logStream: { write: (line: string) => void logLines.push(line) },
    })
  })
  afterAll(async () => {
    await outage?.close()
    deadRedis?.disconnect()
    await healthy?.close()
  })

  it('then the token endpoint fails closed with 503 problem+json, even for the right password', async () => {
    const user = await newUser(healthy)
    const response = await requestToken(
      outage,
      newAddress(),
      passwordGrant(user.email, user.password),
    )
    expect(response.statusCode).toBe(503)
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(response.json()).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' })
    expect(response.json().access_token).toBeUndefined()
    expect(logLines.some((line) => line.includes('login rate limiter unavailable'))).toBe(true)
  })

  it('then authenticated /v1 reads fail open and answer 200', async () => {
    const user = await createTestUser(healthy)
    for (let i = 0; i < 3; i++) {
      const response = await outage.inject({ url: '/v1/users/me', headers: user.headers })
      expect(response.statusCode).toBe(200)
      expect(response.json().email).toBe(user.email)
    }
  })

  it('then unauthenticated /v1 requests fail open too', async () => {
    expect((await register(outage, newAddress())).statusCode).toBe(422)
  })

  it('then /ready reports Redis failing while /health stays up', async () => {
    const ready = await outage.inject({ url: '/ready' })
    expect(ready.statusCode).toBe(503)
    expect(ready.json().checks).toMatchObject({ redis: 'failing' })
    expect((await outage.inject({ url: '/health' })).statusCode).toBe(200)
  })
})
