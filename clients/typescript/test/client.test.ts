import type { AddressInfo } from 'node:net'
import { and, eq, isNull } from 'drizzle-orm'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { refreshTokens } from '../../../src/db/schema/index.js'
import {
  buildTestApp,
  createTestUser,
  type TestApp,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import {
  ApiError,
  createOrderFlowClient,
  type OrderFlowClientOptions,
  SessionExpiredError,
} from '../src/index.js'

const ACCESS_TOKEN_TTL_S = 60

let t: TestApp
let baseUrl: string
let admin: TestUser
let user: TestUser

beforeAll(async () => {
  t = await buildTestApp({
    ACCESS_TOKEN_TTL_S: String(ACCESS_TOKEN_TTL_S),
    JWT_CLOCK_TOLERANCE_S: '0',
  })
  admin = await createTestUser(t, 'admin')
  user = await createTestUser(t, 'user')
  await t.app.listen({ host: '127.0.0.1', port: 0 })
  baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
})
afterAll(() => t?.close())
afterEach(() => {
  vi.useRealTimers()
})

/** A client of the test server whose requests are recorded on their way out. */
function clientOf(options: Omit<OrderFlowClientOptions, 'baseUrl' | 'fetch'> = {}) {
  const sent: { method: string; path: string; body?: string }[] = []
  const sessionChanges: boolean[] = []
  const client = createOrderFlowClient({
    baseUrl,
    onSessionChange: (signedIn) => sessionChanges.push(signedIn),
    ...options,
    fetch: async (request) => {
      const body = request.body ? await request.clone().text() : undefined
      sent.push({ method: request.method, path: new URL(request.url).pathname, body })
      return fetch(request)
    },
  })
  const tokenRequests = () =>
    sent
      .filter((r) => r.path === '/v1/auth/token')
      .map((r) => new URLSearchParams(r.body).get('grant_type'))
  return { client, sent, sessionChanges, tokenRequests }
}

/** Moves the clock of this process, and so of the service in it, past the access token's life. */
function expireAccessTokens() {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(Date.now() + (ACCESS_TOKEN_TTL_S + 5) * 1000)
}

async function liveRefreshTokens(userId: string): Promise<number> {
  const rows = await t.database.db
    .select({ id: refreshTokens.id })
    .from(refreshTokens)
    .where(
      and(
        eq(refreshTokens.userId, userId),
        isNull(refreshTokens.revokedAt),
        isNull(refreshTokens.usedAt),
      ),
    )
  return rows.length
}

/** A user of this file's own, so counting its refresh tokens sees no other test's. */
async function freshUser() {
  return createTestUser(t, 'user')
}

describe('signing in and out', () => {
  it('when a user signs in, then typed calls are made as that user and the session is announced', async () => {
    const { client, sessionChanges } = clientOf()
    expect(client.signedIn).toBe(false)
    await client.signIn(user.email, user.password)
    expect(client.signedIn).toBe(true)
    expect(sessionChanges).toEqual([true])

    const { data } = await client.api.GET('/v1/users/me')
    expect(data).toMatchObject({ id: user.id, email: user.email, role: 'user' })
  })

  it('when the password is wrong, then sign-in raises INVALID_GRANT and no session starts', async () => {
    const { client, sessionChanges } = clientOf()
    const error = await client.signIn(user.email, 'not-the-password').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 400, code: 'INVALID_GRANT' })
    expect((error as ApiError).detail).toMatch(/email or password/i)
    expect(client.signedIn).toBe(false)
    expect(sessionChanges).toEqual([])
  })

  it('when a user signs out, then the refresh token is revoked on the service and the session ends', async () => {
    const someone = await freshUser()
    const { client, sessionChanges } = clientOf()
    await client.signIn(someone.email, someone.password)
    // The helper's own login, plus this one.
    expect(await liveRefreshTokens(someone.id)).toBe(2)

    await client.signOut()
    expect(client.signedIn).toBe(false)
    expect(sessionChanges).toEqual([true, false])
    expect(await liveRefreshTokens(someone.id)).toBe(1)
    const after = await client.api.GET('/v1/users/me').catch((e: unknown) => e)
    expect(after).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' })
  })

  it('when the access token has expired at sign-out, then the rotated refresh token is the one revoked', async () => {
    const someone = await freshUser()
    const { client, tokenRequests } = clientOf()
    await client.signIn(someone.email, someone.password)
    expireAccessTokens()

    await client.signOut()
    expect(tokenRequests()).toEqual(['password', 'refresh_token'])
    expect(client.signedIn).toBe(false)
    expect(await liveRefreshTokens(someone.id)).toBe(1)
  })
})

describe('token refresh', () => {
  it('when the access token has expired, then the client refreshes once and the original call succeeds', async () => {
    const someone = await freshUser()
    const { client, sent, tokenRequests, sessionChanges } = clientOf()
    await client.signIn(someone.email, someone.password)
    expireAccessTokens()

    const { data } = await client.api.GET('/v1/users/me')
    expect(data.id).toBe(someone.id)
    expect(tokenRequests()).toEqual(['password', 'refresh_token'])
    expect(sent.filter((r) => r.path === '/v1/users/me')).toHaveLength(2)
    // Rotation: the used refresh token is spent, and the client holds the one that replaced it.
    expect(await liveRefreshTokens(someone.id)).toBe(2)
    expect(sessionChanges).toEqual([true, true])

    const again = await client.api.GET('/v1/users/me')
    expect(again.data.id).toBe(someone.id)
    expect(tokenRequests()).toHaveLength(2)
  })

  it('when a request with a body is refused for an expired token, then it is sent again whole', async () => {
    const { client } = clientOf()
    await client.signIn(admin.email, admin.password)
    expireAccessTokens()

    const sku = `CL-${unique()}`
    const { data, response } = await client.api.POST('/v1/products', {
      body: { sku, name: 'Client test', price: '12.50', stock: 3 },
    })
    expect(response.status).toBe(201)
    expect(data).toMatchObject({ sku, price: '12.50', stock: 3 })
  })

  it('when several calls are refused at once, then they share one refresh and all succeed', async () => {
    const someone = await freshUser()
    const { client, tokenRequests } = clientOf()
    await client.signIn(someone.email, someone.password)
    expireAccessTokens()

    const answers = await Promise.all(
      Array.from({ length: 6 }, () => client.api.GET('/v1/users/me')),
    )
    expect(answers.map((a) => a.data.id)).toEqual(Array(6).fill(someone.id))
    expect(tokenRequests()).toEqual(['password', 'refresh_token'])
  })

  it('when a request made outside the client is refused, then refresh() renews the headers it sends', async () => {
    const someone = await freshUser()
    const { client, tokenRequests } = clientOf()
    await expect(client.refresh()).rejects.toBeInstanceOf(SessionExpiredError)
    await client.signIn(someone.email, someone.password)
    expireAccessTokens()

    const me = () => fetch(`${baseUrl}/v1/users/me`, { headers: client.authHeaders() })
    expect((await me()).status).toBe(401)
    await Promise.all([client.refresh(), client.refresh()])
    const again = await me()
    expect(again.status).toBe(200)
    expect(((await again.json()) as { id: string }).id).toBe(someone.id)
    expect(tokenRequests()).toEqual(['password', 'refresh_token'])
  })

  it('when the refresh token has been revoked, then the call raises SessionExpiredError and the session ends', async () => {
    const someone = await freshUser()
    const { client, sessionChanges } = clientOf()
    await client.signIn(someone.email, someone.password)
    // Signed out elsewhere: every refresh token of the user revoked.
    await t.database.db
      .update(refreshTokens)
      .set({ revokedAt: new Date() })
      .where(eq(refreshTokens.userId, someone.id))
    expireAccessTokens()

    const calls = await Promise.all(
      [1, 2].map(() => client.api.GET('/v1/users/me').catch((e: unknown) => e)),
    )
    for (const error of calls) {
      expect(error).toBeInstanceOf(SessionExpiredError)
      expect(error).toMatchObject({ status: 401, code: 'SESSION_EXPIRED' })
      expect((error as ApiError).cause).toMatchObject({ status: 400, code: 'INVALID_GRANT' })
    }
    expect(client.signedIn).toBe(false)
    expect(sessionChanges).toEqual([true, false])
    // Nothing left to revoke: signing out of an ended session is quiet.
    await expect(client.signOut()).resolves.toBeUndefined()
  })
})

describe('API keys', () => {
  it('when the client is given an API key, then its calls are made as the key’s owner', async () => {
    const owner = clientOf()
    await owner.client.signIn(user.email, user.password)
    const { data: created } = await owner.client.api.POST('/v1/api-keys', {
      body: { name: `client test ${unique()}` },
    })
    expect(created.key).toBeTruthy()

    const { client, tokenRequests } = clientOf({ apiKey: created.key })
    expect(client.authHeaders()).toEqual({ 'x-api-key': created.key })
    const { data } = await client.api.GET('/v1/users/me')
    expect(data.id).toBe(user.id)
    expect(tokenRequests()).toEqual([])

    await owner.client.api.DELETE('/v1/api-keys/{id}', { params: { path: { id: created.id } } })
    const refused = await client.api.GET('/v1/users/me').catch((e: unknown) => e)
    expect(refused).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' })
    // An API key has no refresh: the 401 is final.
    expect(tokenRequests()).toEqual([])
  })
})

describe('problems as typed errors', () => {
  it('when a body fails validation, then the 422 is raised with every field by its path, and nothing is created', async () => {
    const { client } = clientOf()
    await client.signIn(admin.email, admin.password)
    const sku = `CL-${unique()}`
    const error = await client.api
      .POST('/v1/products', { body: { sku, name: 'Bad', price: '1.999', stock: -1 } })
      .catch((e: unknown) => e)

    expect(error).toBeInstanceOf(ApiError)
    const problem = error as ApiError
    expect(problem).toMatchObject({
      status: 422,
      code: 'VALIDATION_FAILED',
      title: 'Unprocessable Entity',
      type: 'urn:orderflow:problem:validation-failed',
      instance: '/v1/products',
    })
    expect(problem.requestId).toBeTruthy()
    expect(problem.errors.map((e) => e.path).sort()).toEqual(['body.price', 'body.stock'])
    expect(Object.keys(problem.fieldErrors()).sort()).toEqual(['price', 'stock'])

    const { data } = await client.api.GET('/v1/products', { params: { query: { q: sku } } })
    expect(data.total).toBe(0)
  })

  it('when a resource is missing, then its 404 problem is raised with the service’s code and request id', async () => {
    const { client } = clientOf()
    await client.signIn(user.email, user.password)
    const id = '3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10'
    const error = await client.api
      .GET('/v1/orders/{id}', { params: { path: { id } } })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 404, code: 'ORDER_NOT_FOUND', errors: [] })
    expect((error as ApiError).message).toBe((error as ApiError).detail)
    expect((error as ApiError).requestId).toMatch(/\S/)
  })

  it('when an untyped fetch fails, then it raises the same ApiError', async () => {
    const { client } = clientOf()
    const error = await client.fetch('/v1/users/me').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' })
  })
})
