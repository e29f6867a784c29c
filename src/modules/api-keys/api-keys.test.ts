import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { eq } from 'drizzle-orm'
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import { apiKeys } from '../../db/schema/index.js'
import type { Role } from '../../shared/caller.js'

let t: TestApp

beforeAll(async () => {
  t = await buildTestApp()
})
afterAll(() => t.close())

const KEY_FORMAT = /^(ofk_[0-9a-f]{8})_[A-Za-z0-9_-]{43}$/
const KEY_FIELDS = ['created_at', 'expires_at', 'id', 'last_used_at', 'name', 'prefix']

interface CreatedKey {
  id: string
  name: string
  prefix: string
  key: string
  created_at: string
  last_used_at: string | null
  expires_at: string | null
}

async function createKey(user: TestUser, payload: Record<string, unknown> = {}) {
  const response = await injectAs(
    t,
    user,
  )({ method: 'POST', url: '/v1/api-keys', payload: { name: 'nightly export', ...payload } })
  expect(response.statusCode, response.body).toBe(201)
  return response.json() as CreatedKey
}

function withKey(
  key: string,
  options: { method?: 'GET' | 'POST'; url?: string; payload?: object } = {},
) {
  return t.app.inject({
    method: options.method ?? 'GET',
    url: options.url ?? '/v1/users/me',
    headers: { 'x-api-key': key },
    ...(options.payload ? { payload: options.payload } : {}),
  })
}

async function listKeys(user: TestUser) {
  const response = await injectAs(t, user)({ url: '/v1/api-keys' })
  expect(response.statusCode).toBe(200)
  return response.json().items as Omit<CreatedKey, 'key'>[]
}

async function keyRowsOf(userId: string) {
  return t.database.db.select().from(apiKeys).where(eq(apiKeys.userId, userId))
}

function expectProblem(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode, response.body).toBe(status)
  expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
  expect(response.json()).toMatchObject({ status, code })
}

function newProduct() {
  return { sku: `SKU-${unique()}`, name: 'Key-made product', price: '1.00', stock: 1 }
}

describe('POST /v1/api-keys', () => {
  it('answers 201 with the key once, in the ofk_<8 hex>_<secret> format', async () => {
    const user = await createTestUser(t, 'user')
    const response = await injectAs(
      t,
      user,
    )({ method: 'POST', url: '/v1/api-keys', payload: { name: 'nightly export' } })

    expect(response.statusCode).toBe(201)
    const created = response.json() as CreatedKey
    expect(response.headers.location).toBe(`/v1/api-keys/${created.id}`)
    expect(Object.keys(created).sort()).toEqual([...KEY_FIELDS, 'key'].sort())
    expect(created).toMatchObject({ name: 'nightly export', last_used_at: null, expires_at: null })
    const [, prefix] = KEY_FORMAT.exec(created.key) ?? []
    expect(prefix).toBeDefined()
    expect(created.prefix).toBe(prefix)
    expect(Date.parse(created.created_at)).toBeGreaterThan(Date.now() - 60_000)
  })

  it('stores only a hash of the key: no column holds the key or its secret part', async () => {
    const user = await createTestUser(t, 'user')
    const created = await createKey(user)
    const secret = created.key.slice(created.prefix.length + 1)

    const rows = await keyRowsOf(user.id)

    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ id: created.id, prefix: created.prefix, revokedAt: null })
    expect(rows[0]?.keyHash).toMatch(/^[0-9a-f]{64}$/)
    const stored = JSON.stringify(rows)
    expect(stored).not.toContain(secret)
    expect(stored).not.toContain(created.key)
  })

  it('gives every key its own prefix and secret', async () => {
    const user = await createTestUser(t, 'user')
    const [a, b] = [await createKey(user), await createKey(user)]
    expect(a.prefix).not.toBe(b.prefix)
    expect(a.key).not.toBe(b.key)
  })

  it('keeps a future expires_at and the key works until then', async () => {
    const user = await createTestUser(t, 'user')
    const expiresAt = new Date(Date.now() + 3_600_000)
    const created = await createKey(user, { expires_at: expiresAt.toISOString() })

    expect(created.expires_at).toBe(expiresAt.toISOString())
    expect((await withKey(created.key)).statusCode).toBe(200)
  })

  it.each([
    ['an expires_at in the past', { expires_at: new Date(Date.now() - 1000).toISOString() }],
    ['an expires_at that is not a date-time', { expires_at: 'next tuesday' }],
    ['an expires_at without a time zone', { expires_at: '2099-01-01T00:00:00' }],
    [
      'an expires_at on a leap second JavaScript cannot represent',
      { expires_at: '2099-12-31T23:59:60Z' },
    ],
    ['an empty name', { name: '' }],
    ['a name over 100 characters', { name: 'n'.repeat(101) }],
    ['a missing name', { name: undefined }],
    ['another owner', { user_id: randomUUID() }],
    ['a chosen key', { key: 'ofk_00000000_chosen-by-the-client-not-random-at-all' }],
  ])('rejects %s with 422 and stores no key', async (_case, overrides) => {
    const user = await createTestUser(t, 'user')
    const payload = { name: 'nightly export', ...overrides }
    const response = await injectAs(t, user)({ method: 'POST', url: '/v1/api-keys', payload })

    expectProblem(response, 422, 'VALIDATION_FAILED')
    const field = Object.keys(overrides)[0]
    expect(response.json().errors.map((e: { path: string }) => e.path)).toEqual([`body.${field}`])
    expect(await keyRowsOf(user.id)).toEqual([])
  })

  it('explains a past expires_at', async () => {
    const user = await createTestUser(t, 'user')
    const response = await injectAs(
      t,
      user,
    )({
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: 'too late', expires_at: '2020-01-01T00:00:00Z' },
    })
    expect(response.json().errors).toEqual([
      { path: 'body.expires_at', message: 'must be in the future' },
    ])
  })

  it('answers 401 without credentials', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: 'anonymous' },
    })
    expectProblem(response, 401, 'UNAUTHENTICATED')
  })

  it('refuses a request made with an API key: a key cannot mint keys that outlive it', async () => {
    const owner = await createTestUser(t, 'user')
    const key = await createKey(owner, { name: 'short-lived' })
    const response = await withKey(key.key, {
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: 'forever' },
    })
    expectProblem(response, 403, 'FORBIDDEN')
    const rows = await t.database.db.select().from(apiKeys).where(eq(apiKeys.userId, owner.id))
    expect(rows.map((row) => row.name)).toEqual(['short-lived'])
  })
})

describe('GET /v1/api-keys', () => {
  it('lists only the caller’s own live keys, oldest first, and never a secret', async () => {
    const owner = await createTestUser(t, 'viewer')
    const other = await createTestUser(t, 'viewer')
    const first = await createKey(owner, { name: 'first' })
    const second = await createKey(owner, {
      name: 'second',
      expires_at: new Date(Date.now() + 86_400_000).toISOString(),
    })
    const foreign = await createKey(other, { name: 'foreign' })

    const response = await injectAs(t, owner)({ url: '/v1/api-keys' })

    expect(response.statusCode).toBe(200)
    const { items } = response.json()
    expect(items).toEqual([
      {
        id: first.id,
        name: 'first',
        prefix: first.prefix,
        created_at: first.created_at,
        last_used_at: null,
        expires_at: null,
      },
      {
        id: second.id,
        name: 'second',
        prefix: second.prefix,
        created_at: second.created_at,
        last_used_at: null,
        expires_at: second.expires_at,
      },
    ])
    for (const secret of [first.key, second.key, foreign.key]) {
      expect(response.body).not.toContain(secret)
    }
    expect(response.body).not.toContain(foreign.id)
  })

  it('records when a key was last used', async () => {
    const user = await createTestUser(t, 'user')
    const created = await createKey(user)
    expect((await withKey(created.key)).statusCode).toBe(200)

    const [listed] = await listKeys(user)

    expect(listed?.id).toBe(created.id)
    expect(Date.parse(listed?.last_used_at ?? '')).toBeGreaterThanOrEqual(
      Date.parse(created.created_at),
    )
  })
})

describe('X-API-Key authentication', () => {
  it('authenticates as the key’s owner', async () => {
    const user = await createTestUser(t, 'user')
    const created = await createKey(user)
    const response = await withKey(created.key)
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ id: user.id, email: user.email, role: 'user' })
  })

  it.each([
    ['viewer', 403],
    ['user', 403],
    ['admin', 201],
  ] as [Role, number][])(
    'carries the owner’s role: a %s key writing a product answers %i',
    async (role, status) => {
      const owner = await createTestUser(t, role)
      const { key } = await createKey(owner)
      const payload = newProduct()

      const write = await withKey(key, { method: 'POST', url: '/v1/products', payload })
      const read = await withKey(key, { url: '/v1/products' })

      expect(write.statusCode).toBe(status)
      if (status === 403) expect(write.json().code).toBe('FORBIDDEN')
      expect(read.statusCode).toBe(200)
      const found = await withKey(key, { url: `/v1/products?q=${payload.sku}` })
      expect(found.json().total).toBe(status === 201 ? 1 : 0)
    },
  )

  it('follows the owner’s current role, not the one they had when the key was made', async () => {
    const owner = await createTestUser(t, 'viewer')
    const admin = await createTestUser(t, 'admin')
    const { key } = await createKey(owner)
    expect((await withKey(key, { url: '/v1/users' })).statusCode).toBe(403)

    const promote = await injectAs(
      t,
      admin,
    )({ method: 'PATCH', url: `/v1/users/${owner.id}`, payload: { role: 'admin' } })
    expect(promote.statusCode).toBe(200)

    expect((await withKey(key, { url: '/v1/users' })).statusCode).toBe(200)
  })

  it('refuses an expired key with 401 and no longer lists it', async () => {
    const user = await createTestUser(t, 'user')
    // Long enough for a loaded machine to create and use the key before it expires: at 1.5 s
    // the first use came late once (a load average of 27) and was refused.
    const expiresAt = Date.now() + 4000
    const created = await createKey(user, { expires_at: new Date(expiresAt).toISOString() })
    // Used before it expires, so its owner is cached: expiry must still apply on time.
    expect((await withKey(created.key)).statusCode).toBe(200)
    await sleep(expiresAt - Date.now() + 50)

    const response = await withKey(created.key)

    expectProblem(response, 401, 'UNAUTHENTICATED')
    expect(response.headers['www-authenticate']).toMatch(/^Bearer /)
    expect(await listKeys(user)).toEqual([])
  })

  it.each([
    ['an unknown key of the right shape', () => `ofk_00000000_${'A'.repeat(43)}`],
    ['a key without the ofk_ prefix', () => 'A'.repeat(60)],
    ['a real key’s prefix alone', (real: CreatedKey) => real.prefix],
    [
      'a real key with its last character changed',
      (real: CreatedKey) => `${real.key.slice(0, -1)}${real.key.endsWith('A') ? 'B' : 'A'}`,
    ],
  ])('refuses %s with 401', async (_case, presented) => {
    const user = await createTestUser(t, 'user')
    const real = await createKey(user)
    expectProblem(await withKey(presented(real)), 401, 'UNAUTHENTICATED')
  })

  it('when a key is sent as a bearer token, as OpenAI clients send theirs, then it authenticates as the key; a revoked one does not', async () => {
    const user = await createTestUser(t, 'user')
    const { key, id } = await createKey(user)
    const response = await t.app.inject({
      url: '/v1/users/me',
      headers: { authorization: `Bearer ${key}` },
    })
    expect(response.statusCode).toBe(200)
    expect(response.json().id).toBe(user.id)

    await t.app.inject({ method: 'DELETE', url: `/v1/api-keys/${id}`, headers: user.headers })
    const revoked = await t.app.inject({
      url: '/v1/users/me',
      headers: { authorization: `Bearer ${key}` },
    })
    expectProblem(revoked, 401, 'UNAUTHENTICATED')
  })

  it.each(['api_key', 'apikey', 'key', 'token'])(
    'refuses a key in the query string (?%s=), even alongside a valid header',
    async (name) => {
      const user = await createTestUser(t, 'user')
      const { key } = await createKey(user)

      const alone = await t.app.inject({ url: `/v1/users/me?${name}=${key}` })
      const withHeader = await t.app.inject({
        url: `/v1/users/me?${name}=${key}`,
        headers: { 'x-api-key': key },
      })

      expectProblem(alone, 401, 'UNAUTHENTICATED')
      expectProblem(withHeader, 401, 'UNAUTHENTICATED')
      expect(withHeader.json().detail).toMatch(/query string/)
    },
  )
})

describe('DELETE /v1/api-keys/{id}', () => {
  it('revokes the key: 204, then 401 wherever it is presented', async () => {
    const user = await createTestUser(t, 'user')
    const created = await createKey(user)
    const kept = await createKey(user, { name: 'kept' })

    const response = await injectAs(
      t,
      user,
    )({ method: 'DELETE', url: `/v1/api-keys/${created.id}` })

    expect(response.statusCode).toBe(204)
    expect(response.body).toBe('')
    expectProblem(await withKey(created.key), 401, 'UNAUTHENTICATED')
    const [row] = await t.database.db.select().from(apiKeys).where(eq(apiKeys.id, created.id))
    expect(row?.revokedAt).toBeInstanceOf(Date)
    expect((await listKeys(user)).map((k) => k.id)).toEqual([kept.id])
    expect((await withKey(kept.key)).statusCode).toBe(200)
  })

  it('answers 404 API_KEY_NOT_FOUND for a key already revoked', async () => {
    const user = await createTestUser(t, 'user')
    const created = await createKey(user)
    const inject = injectAs(t, user)
    expect((await inject({ method: 'DELETE', url: `/v1/api-keys/${created.id}` })).statusCode).toBe(
      204,
    )

    const again = await inject({ method: 'DELETE', url: `/v1/api-keys/${created.id}` })

    expectProblem(again, 404, 'API_KEY_NOT_FOUND')
  })

  it('lets a key revoke itself', async () => {
    const user = await createTestUser(t, 'viewer')
    const created = await createKey(user)
    const response = await t.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${created.id}`,
      headers: { 'x-api-key': created.key },
    })
    expect(response.statusCode).toBe(204)
    expectProblem(await withKey(created.key), 401, 'UNAUTHENTICATED')
  })

  it.each(['user', 'admin'] as Role[])(
    'answers 404 to a %s revoking another user’s key, exactly as for a missing one, and the key keeps working',
    async (role) => {
      const owner = await createTestUser(t, 'user')
      const intruder = await createTestUser(t, role)
      const victim = await createKey(owner)
      const inject = injectAs(t, intruder)

      const foreign = await inject({ method: 'DELETE', url: `/v1/api-keys/${victim.id}` })
      const missingId = randomUUID()
      const missing = await inject({ method: 'DELETE', url: `/v1/api-keys/${missingId}` })

      expectProblem(foreign, 404, 'API_KEY_NOT_FOUND')
      // Only the echoed id (and the request id) may differ: nothing tells the key exists.
      const comparable = (response: LightMyRequestResponse, id: string) => {
        const { request_id: _requestId, ...problem } = response.json()
        return JSON.parse(JSON.stringify(problem).replaceAll(id, '<id>'))
      }
      expect(comparable(foreign, victim.id)).toEqual(comparable(missing, missingId))
      expect(foreign.headers['content-length']).toBe(missing.headers['content-length'])
      const [row] = await t.database.db.select().from(apiKeys).where(eq(apiKeys.id, victim.id))
      expect(row?.revokedAt).toBeNull()
      expect((await withKey(victim.key)).json().id).toBe(owner.id)
    },
  )

  it('answers 422 for an id that is not a UUID', async () => {
    const user = await createTestUser(t, 'user')
    const response = await injectAs(t, user)({ method: 'DELETE', url: '/v1/api-keys/ofk_1234' })
    expectProblem(response, 422, 'VALIDATION_FAILED')
  })
})
