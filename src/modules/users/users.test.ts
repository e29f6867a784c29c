import { randomUUID } from 'node:crypto'
import { eq, sql } from 'drizzle-orm'
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  login,
  type TestApp,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import { apiKeys, refreshTokens, users } from '../../db/schema/index.js'

let t: TestApp
let admin: TestUser
let asAdmin: ReturnType<typeof injectAs>

beforeAll(async () => {
  t = await buildTestApp()
  admin = await createTestUser(t, 'admin')
  asAdmin = injectAs(t, admin)
})
afterAll(() => t.close())

const USER_FIELDS = [
  'created_at',
  'email',
  'full_name',
  'id',
  'is_active',
  'last_login_at',
  'role',
  'updated_at',
]

function newUser(overrides: Record<string, unknown> = {}) {
  return {
    email: `ada-${unique().toLowerCase()}@example.com`,
    password: 'correct horse battery staple',
    full_name: 'Ada Lovelace',
    ...overrides,
  }
}

function register(payload: Record<string, unknown>, app: TestApp = t) {
  return app.app.inject({ method: 'POST', url: '/v1/auth/register', payload })
}

async function rowOf(id: string) {
  const [row] = await t.database.db.select().from(users).where(eq(users.id, id))
  return row
}

async function rowsWithEmail(email: string, app: TestApp = t) {
  return app.database.db
    .select()
    .from(users)
    .where(sql`lower(${users.email}) = ${email.toLowerCase()}`)
}

function expectProblem(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode, response.body).toBe(status)
  expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
  expect(response.json()).toMatchObject({ status, code })
}

function errorPaths(response: LightMyRequestResponse): string[] {
  return response.json().errors.map((e: { path: string }) => e.path)
}

function refresh(refreshToken: string) {
  return t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'refresh_token', refresh_token: refreshToken },
  })
}

function tokenFor(email: string, password: string) {
  return t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: { grant_type: 'password', username: email, password },
  })
}

async function createApiKey(user: TestUser): Promise<string> {
  const response = await injectAs(
    t,
    user,
  )({ method: 'POST', url: '/v1/api-keys', payload: { name: 'ci' } })
  expect(response.statusCode).toBe(201)
  return response.json().key
}

/** Every credential a user can hold, each checked where it is used. */
async function credentialStatuses(user: TestUser, key: string) {
  const [bearer, apiKey, refreshed] = await Promise.all([
    t.app.inject({ url: '/v1/users/me', headers: user.headers }),
    t.app.inject({ url: '/v1/users/me', headers: { 'x-api-key': key } }),
    refresh(user.refreshToken),
  ])
  return { bearer: bearer.statusCode, apiKey: apiKey.statusCode, refresh: refreshed.statusCode }
}

async function liveCredentialRows(userId: string) {
  const [tokens, keys] = await Promise.all([
    t.database.db
      .select()
      .from(refreshTokens)
      .where(sql`${refreshTokens.userId} = ${userId} and ${refreshTokens.revokedAt} is null`),
    t.database.db
      .select()
      .from(apiKeys)
      .where(sql`${apiKeys.userId} = ${userId} and ${apiKeys.revokedAt} is null`),
  ])
  return { refreshTokens: tokens.length, apiKeys: keys.length }
}

describe('POST /v1/auth/register', () => {
  it('creates a user with the user role and answers 201 without any password or hash', async () => {
    const payload = newUser()
    const response = await register(payload)

    expect(response.statusCode).toBe(201)
    const user = response.json()
    expect(response.headers.location).toBe(`/v1/users/${user.id}`)
    expect(Object.keys(user).sort()).toEqual(USER_FIELDS)
    expect(user).toMatchObject({
      email: payload.email,
      full_name: 'Ada Lovelace',
      role: 'user',
      is_active: true,
      last_login_at: null,
    })
    const row = await rowOf(user.id)
    expect(row?.passwordHash).toMatch(/^\$argon2id\$/)
    expect(response.body).not.toContain(payload.password)
    expect(response.body).not.toContain(row?.passwordHash)
    expect((await tokenFor(payload.email, payload.password)).statusCode).toBe(200)
  })

  it('stores the email lower-cased, so logins in any case find the account', async () => {
    const payload = newUser({ email: `Ada.${unique()}@Example.COM` })
    const response = await register(payload)

    expect(response.statusCode).toBe(201)
    expect(response.json().email).toBe(payload.email.toLowerCase())
    expect((await tokenFor(payload.email.toUpperCase(), payload.password)).statusCode).toBe(200)
  })

  it('rejects an email already taken in another case with 409 EMAIL_TAKEN and keeps the original', async () => {
    const original = newUser()
    const first = await register(original)
    expect(first.statusCode).toBe(201)
    const before = await rowOf(first.json().id)

    const response = await register(
      newUser({ email: original.email.toUpperCase(), password: 'another long password' }),
    )

    expectProblem(response, 409, 'EMAIL_TAKEN')
    expect(await rowsWithEmail(original.email)).toEqual([before])
    expect((await tokenFor(original.email, 'another long password')).statusCode).toBe(400)
  })

  it('lets exactly one of several racing registrations of the same email win', async () => {
    const payload = newUser()
    const answers = await Promise.all(Array.from({ length: 5 }, () => register(payload)))

    const statuses = answers.map((a) => a.statusCode).sort()
    expect(statuses).toEqual([201, 409, 409, 409, 409])
    expect(await rowsWithEmail(payload.email)).toHaveLength(1)
  })

  it.each([
    ['an email without a domain', { email: 'ada@' }, 'body.email'],
    ['an email without an @', { email: 'ada.example.com' }, 'body.email'],
    ['an empty email', { email: '' }, 'body.email'],
    ['an email over 254 characters', { email: `${'a'.repeat(250)}@example.com` }, 'body.email'],
    ['a missing email', { email: undefined }, 'body.email'],
    ['a password of 11 characters', { password: 'a'.repeat(11) }, 'body.password'],
    ['a password of 129 characters', { password: 'a'.repeat(129) }, 'body.password'],
    ['a password sent as a number', { password: 123456789012345 }, 'body.password'],
    ['a missing password', { password: undefined }, 'body.password'],
    ['an empty full name', { full_name: '' }, 'body.full_name'],
    ['a missing full name', { full_name: undefined }, 'body.full_name'],
    ['a self-chosen role', { role: 'admin' }, 'body.role'],
    ['a self-chosen is_active', { is_active: true }, 'body.is_active'],
    ['an id', { id: randomUUID() }, 'body.id'],
  ])('rejects %s with 422 naming the field, and stores nothing', async (_case, overrides, path) => {
    const email = `ada-${unique().toLowerCase()}@example.com`
    const response = await register(newUser({ email, ...overrides }))

    expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(errorPaths(response)).toContain(path)
    expect(await rowsWithEmail(email)).toEqual([])
  })

  it('rejects a password equal to the email, whatever its case, with 422', async () => {
    const email = `ada-lovelace-${unique().toLowerCase()}@example.com`
    const response = await register(newUser({ email, password: ` ${email.toUpperCase()} ` }))

    expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(response.json().errors).toEqual([
      { path: 'body.password', message: 'must not be the email address' },
    ])
    expect(await rowsWithEmail(email)).toEqual([])
  })

  it('accepts passwords of exactly 12 and 128 characters', async () => {
    for (const password of ['p'.repeat(12), 'p'.repeat(128)]) {
      const payload = newUser({ password })
      expect((await register(payload)).statusCode).toBe(201)
      expect((await tokenFor(payload.email, password)).statusCode).toBe(200)
    }
  })

  describe('when registration is disabled', () => {
    let closed: TestApp

    beforeAll(async () => {
      closed = await buildTestApp({ REGISTRATION_ENABLED: 'false' })
    })
    afterAll(() => closed.close())

    it('answers 403 REGISTRATION_CLOSED and stores nothing', async () => {
      const payload = newUser()
      const response = await register(payload, closed)

      expect(response.statusCode).toBe(403)
      expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
      expect(response.json()).toMatchObject({
        status: 403,
        code: 'REGISTRATION_CLOSED',
        instance: '/v1/auth/register',
      })
      expect(await rowsWithEmail(payload.email, closed)).toEqual([])
    })

    it('still lets an admin create users', async () => {
      const closedAdmin = await createTestUser(closed, 'admin')
      const response = await injectAs(
        closed,
        closedAdmin,
      )({ method: 'POST', url: '/v1/users', payload: newUser() })
      expect(response.statusCode).toBe(201)
    })
  })
})

describe('GET /v1/users/me', () => {
  it('answers the caller’s own profile', async () => {
    const viewer = await createTestUser(t, 'viewer')
    const response = await injectAs(t, viewer)({ url: '/v1/users/me' })

    expect(response.statusCode).toBe(200)
    expect(Object.keys(response.json()).sort()).toEqual(USER_FIELDS)
    expect(response.json()).toMatchObject({
      id: viewer.id,
      email: viewer.email,
      role: 'viewer',
      is_active: true,
    })
  })
})

describe('PATCH /v1/users/me', () => {
  it('changes the full name and updated_at, and nothing else', async () => {
    const user = await createTestUser(t, 'user')
    const before = await rowOf(user.id)
    const response = await injectAs(
      t,
      user,
    )({ method: 'PATCH', url: '/v1/users/me', payload: { full_name: 'Grace Hopper' } })

    expect(response.statusCode).toBe(200)
    expect(response.json().full_name).toBe('Grace Hopper')
    const after = await rowOf(user.id)
    expect(after).toEqual({ ...before, fullName: 'Grace Hopper', updatedAt: after?.updatedAt })
    expect(after?.updatedAt.getTime()).toBeGreaterThan(before?.updatedAt.getTime() ?? Infinity)
    // A name change is not a credential change: the session keeps working.
    expect((await injectAs(t, user)({ url: '/v1/users/me' })).json().full_name).toBe('Grace Hopper')
  })

  it.each([
    ['role', { role: 'admin' }],
    ['id', { id: randomUUID() }],
    ['email', { email: 'someone-else@example.com' }],
    ['created_at', { created_at: '2000-01-01T00:00:00Z' }],
    ['password_hash', { password_hash: '$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB' }],
    ['is_active', { is_active: false }],
    ['auth_version', { auth_version: 0 }],
  ])('rejects a change of %s with 422 and changes nothing', async (field, payload) => {
    const user = await createTestUser(t, 'viewer')
    const before = await rowOf(user.id)
    const response = await injectAs(
      t,
      user,
    )({ method: 'PATCH', url: '/v1/users/me', payload: { full_name: 'Changed', ...payload } })

    expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(errorPaths(response)).toContain(`body.${field}`)
    expect(await rowOf(user.id)).toEqual(before)
  })

  it('rejects an empty body with 422', async () => {
    const user = await createTestUser(t, 'user')
    const response = await injectAs(t, user)({ method: 'PATCH', url: '/v1/users/me', payload: {} })
    expectProblem(response, 422, 'VALIDATION_FAILED')
  })

  describe('changing the password', () => {
    function changePassword(user: TestUser, payload: Record<string, unknown>) {
      return injectAs(t, user)({ method: 'PATCH', url: '/v1/users/me', payload })
    }

    it.each([
      ['without current_password', undefined, 'is required to change the password'],
      ['with a wrong current_password', 'not my password at all', 'is not the current password'],
    ])('refuses a change %s with 422, and changes nothing', async (_case, current, message) => {
      const user = await createTestUser(t, 'user')
      const key = await createApiKey(user)
      const before = await rowOf(user.id)

      const response = await changePassword(user, {
        full_name: 'Not applied either',
        password: 'a brand new long password',
        current_password: current,
      })

      expectProblem(response, 422, 'VALIDATION_FAILED')
      expect(response.json().errors).toEqual([{ path: 'body.current_password', message }])
      expect(await rowOf(user.id)).toEqual(before)
      expect(await credentialStatuses(user, key)).toEqual({
        bearer: 200,
        apiKey: 200,
        refresh: 200,
      })
      expect((await tokenFor(user.email, 'a brand new long password')).statusCode).toBe(400)
    })

    it('refuses a new password equal to the email with 422, and changes nothing', async () => {
      const user = await createTestUser(t, 'user')
      const before = await rowOf(user.id)
      const response = await changePassword(user, {
        password: user.email.toUpperCase(),
        current_password: user.password,
      })

      expectProblem(response, 422, 'VALIDATION_FAILED')
      expect(errorPaths(response)).toEqual(['body.password'])
      expect(await rowOf(user.id)).toEqual(before)
    })

    it('signs out everywhere: old access token, refresh tokens and API keys answer 401 or invalid_grant', async () => {
      const user = await createTestUser(t, 'user')
      const bystander = await createTestUser(t, 'user')
      const [key, bystanderKey] = [await createApiKey(user), await createApiKey(bystander)]
      const secondSession = await login(t, user.email, user.password)

      const response = await changePassword(user, {
        password: 'a brand new long password',
        current_password: user.password,
      })

      expect(response.statusCode).toBe(200)
      expect(response.json().id).toBe(user.id)
      const bearer = await t.app.inject({ url: '/v1/users/me', headers: user.headers })
      expectProblem(bearer, 401, 'UNAUTHENTICATED')
      expect(bearer.headers['www-authenticate']).toMatch(/^Bearer /)
      expectProblem(
        await t.app.inject({ url: '/v1/users/me', headers: { 'x-api-key': key } }),
        401,
        'UNAUTHENTICATED',
      )
      for (const token of [user.refreshToken, secondSession.refresh_token]) {
        const refreshed = await refresh(token)
        expect(refreshed.statusCode).toBe(400)
        expect(refreshed.json().error).toBe('invalid_grant')
      }
      expect(await liveCredentialRows(user.id)).toEqual({ refreshTokens: 0, apiKeys: 0 })

      expect((await tokenFor(user.email, user.password)).statusCode).toBe(400)
      const fresh = await login(t, user.email, 'a brand new long password')
      const me = await t.app.inject({
        url: '/v1/users/me',
        headers: { authorization: `Bearer ${fresh.access_token}` },
      })
      expect(me.statusCode).toBe(200)

      // Someone else's sign-out is not everyone's.
      expect(await credentialStatuses(bystander, bystanderKey)).toEqual({
        bearer: 200,
        apiKey: 200,
        refresh: 200,
      })
    })
  })
})

describe('GET /v1/users (admin)', () => {
  const marker = `Marker${unique()}`
  const made: Record<string, { id: string; email: string; role: string; is_active: boolean }> = {}

  beforeAll(async () => {
    const specs = [
      ['alpha', 'user', true],
      ['bravo', 'viewer', true],
      ['charlie', 'user', false],
      ['delta', 'admin', true],
      ['echo', 'viewer', false],
    ] as const
    for (const [name, role, isActive] of specs) {
      const response = await asAdmin({
        method: 'POST',
        url: '/v1/users',
        payload: newUser({
          email: `${name}-${unique().toLowerCase()}@example.com`,
          full_name: `${name} ${marker}`,
          role,
          is_active: isActive,
        }),
      })
      expect(response.statusCode).toBe(201)
      made[name] = response.json()
    }
  })

  async function list(query: string) {
    const response = await asAdmin({ url: `/v1/users?${query}` })
    expect(response.statusCode, response.body).toBe(200)
    return response.json()
  }

  const names = (page: { items: { full_name: string }[] }) =>
    page.items.map((u) => u.full_name.split(' ')[0])

  it('pages through the users matching q', async () => {
    const first = await list(`q=${marker}&page_size=2&sort=email`)
    const third = await list(`q=${marker}&page_size=2&page=3&sort=email`)

    expect(first).toMatchObject({ page: 1, page_size: 2, total: 5, total_pages: 3 })
    expect(names(first)).toEqual(['alpha', 'bravo'])
    expect(third).toMatchObject({ page: 3, total: 5 })
    expect(names(third)).toEqual(['echo'])
    expect(Object.keys(first.items[0]).sort()).toEqual(USER_FIELDS)
  })

  it('defaults to 20 per page', async () => {
    const page = await list(`q=${marker}`)
    expect(page).toMatchObject({ page: 1, page_size: 20, total: 5, total_pages: 1 })
  })

  it('sorts by email descending with sort=-email', async () => {
    expect(names(await list(`q=${marker}&sort=-email`))).toEqual([
      'echo',
      'delta',
      'charlie',
      'bravo',
      'alpha',
    ])
  })

  it('filters by role and by is_active, together with q', async () => {
    expect(names(await list(`q=${marker}&role=viewer&sort=email`))).toEqual(['bravo', 'echo'])
    expect(names(await list(`q=${marker}&is_active=false&sort=email`))).toEqual(['charlie', 'echo'])
    const both = await list(`q=${marker}&role=user&is_active=true`)
    expect(names(both)).toEqual(['alpha'])
    expect(both.total).toBe(1)
  })

  it('searches the email as well as the name, ignoring case', async () => {
    const byEmail = await list(`q=${encodeURIComponent(made.delta?.email.toUpperCase() ?? '')}`)
    expect(byEmail.items.map((u: { id: string }) => u.id)).toEqual([made.delta?.id])
    expect((await list(`q=${marker.toLowerCase()}`)).total).toBe(5)
  })

  it('treats % and _ in q as plain characters', async () => {
    expect((await list(`q=${encodeURIComponent(`${marker}%`)}`)).total).toBe(0)
    expect((await list(`q=${encodeURIComponent(`_${marker}`)}`)).total).toBe(0)
  })

  it.each([
    ['an unknown role', 'role=superuser', 'query.role'],
    ['a non-boolean is_active', 'is_active=maybe', 'query.is_active'],
    ['a page_size over 100', 'page_size=101', 'query.page_size'],
    ['page 0', 'page=0', 'query.page'],
    ['an unknown sort', 'sort=password_hash', 'query.sort'],
    ['an empty q', 'q=', 'query.q'],
    ['an unknown parameter', 'email=x', 'query.email'],
  ])('rejects %s with 422', async (_case, query, path) => {
    const response = await asAdmin({ url: `/v1/users?${query}` })
    expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(errorPaths(response)).toContain(path)
  })
})

describe('POST /v1/users (admin)', () => {
  it('creates a user with the given role and activity, who logs in only when active', async () => {
    const payload = newUser({ role: 'viewer', is_active: false })
    const response = await asAdmin({ method: 'POST', url: '/v1/users', payload })

    expect(response.statusCode).toBe(201)
    const user = response.json()
    expect(response.headers.location).toBe(`/v1/users/${user.id}`)
    expect(user).toMatchObject({ email: payload.email, role: 'viewer', is_active: false })
    expect(response.body).not.toContain(payload.password)
    expect((await asAdmin({ url: `/v1/users/${user.id}` })).json()).toEqual(user)
    expect((await tokenFor(payload.email, payload.password)).statusCode).toBe(400)
  })

  it('defaults to the user role, active', async () => {
    const payload = newUser()
    const response = await asAdmin({ method: 'POST', url: '/v1/users', payload })
    expect(response.json()).toMatchObject({ role: 'user', is_active: true })
    expect((await tokenFor(payload.email, payload.password)).statusCode).toBe(200)
  })

  it('rejects a taken email with 409 EMAIL_TAKEN', async () => {
    const response = await asAdmin({
      method: 'POST',
      url: '/v1/users',
      payload: newUser({ email: admin.email.toUpperCase(), role: 'viewer' }),
    })
    expectProblem(response, 409, 'EMAIL_TAKEN')
    expect((await rowOf(admin.id))?.role).toBe('admin')
  })

  it.each([
    ['an unknown role', { role: 'root' }, 'body.role'],
    ['a short password', { password: 'short' }, 'body.password'],
    ['a bad email', { email: 'nope' }, 'body.email'],
    ['an id', { id: randomUUID() }, 'body.id'],
  ])('rejects %s with 422 and stores nothing', async (_case, overrides, path) => {
    const email = `grace-${unique().toLowerCase()}@example.com`
    const response = await asAdmin({
      method: 'POST',
      url: '/v1/users',
      payload: newUser({ email, ...overrides }),
    })
    expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(errorPaths(response)).toContain(path)
    expect(await rowsWithEmail(email)).toEqual([])
  })
})

describe('GET /v1/users/{id} (admin)', () => {
  it('answers the user', async () => {
    const viewer = await createTestUser(t, 'viewer')
    const response = await asAdmin({ url: `/v1/users/${viewer.id}` })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ id: viewer.id, email: viewer.email, role: 'viewer' })
  })

  it('answers 404 USER_NOT_FOUND for an unknown id', async () => {
    expectProblem(await asAdmin({ url: `/v1/users/${randomUUID()}` }), 404, 'USER_NOT_FOUND')
  })

  it('answers 422 for an id that is not a UUID', async () => {
    const response = await asAdmin({ url: '/v1/users/42' })
    expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(errorPaths(response)).toEqual(['params.id'])
  })
})

describe('PATCH /v1/users/{id} (admin)', () => {
  function patch(id: string, payload: Record<string, unknown>) {
    return asAdmin({ method: 'PATCH', url: `/v1/users/${id}`, payload })
  }

  it('changes name and role, and the new role applies to tokens already issued', async () => {
    const user = await createTestUser(t, 'user')
    expect((await injectAs(t, user)({ url: '/v1/users' })).statusCode).toBe(403)

    const response = await patch(user.id, { full_name: 'Promoted', role: 'admin' })

    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ id: user.id, full_name: 'Promoted', role: 'admin' })
    expect((await rowOf(user.id))?.role).toBe('admin')
    expect((await injectAs(t, user)({ url: '/v1/users' })).statusCode).toBe(200)
  })

  it('deactivating a user cuts their access tokens, refresh tokens and API keys at once', async () => {
    const user = await createTestUser(t, 'user')
    const bystander = await createTestUser(t, 'user')
    const [key, bystanderKey] = [await createApiKey(user), await createApiKey(bystander)]
    const versionBefore = (await rowOf(user.id))?.authVersion ?? 0

    const response = await patch(user.id, { is_active: false })

    expect(response.statusCode).toBe(200)
    expect(response.json().is_active).toBe(false)
    expect(await credentialStatuses(user, key)).toEqual({ bearer: 401, apiKey: 401, refresh: 400 })
    expect(await liveCredentialRows(user.id)).toEqual({ refreshTokens: 0, apiKeys: 0 })
    expect((await rowOf(user.id))?.authVersion).toBe(versionBefore + 1)
    expect((await tokenFor(user.email, user.password)).statusCode).toBe(400)
    expect(await credentialStatuses(bystander, bystanderKey)).toEqual({
      bearer: 200,
      apiKey: 200,
      refresh: 200,
    })
  })

  it('reactivating a user lets them log in again but revives no old credential', async () => {
    const user = await createTestUser(t, 'user')
    const key = await createApiKey(user)
    expect((await patch(user.id, { is_active: false })).statusCode).toBe(200)

    expect((await patch(user.id, { is_active: true })).json().is_active).toBe(true)

    expect(await credentialStatuses(user, key)).toEqual({ bearer: 401, apiKey: 401, refresh: 400 })
    expect((await tokenFor(user.email, user.password)).statusCode).toBe(200)
  })

  it.each([
    ['demote themselves', { role: 'user' }],
    ['demote themselves to viewer', { role: 'viewer' }],
    ['deactivate themselves', { is_active: false }],
    ['demote themselves while renaming', { full_name: 'Someone', role: 'viewer' }],
  ])(
    'refuses to let an admin %s with 409 SELF_LOCKOUT, changing nothing',
    async (_case, payload) => {
      const self = await createTestUser(t, 'admin')
      const before = await rowOf(self.id)
      const response = await injectAs(
        t,
        self,
      )({ method: 'PATCH', url: `/v1/users/${self.id}`, payload })

      expectProblem(response, 409, 'SELF_LOCKOUT')
      expect(await rowOf(self.id)).toEqual(before)
      expect((await injectAs(t, self)({ url: '/v1/users' })).statusCode).toBe(200)
    },
  )

  it('lets an admin rename themselves and confirm their own admin role', async () => {
    const self = await createTestUser(t, 'admin')
    const response = await injectAs(
      t,
      self,
    )({
      method: 'PATCH',
      url: `/v1/users/${self.id}`,
      payload: { full_name: 'Still in charge', role: 'admin', is_active: true },
    })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ full_name: 'Still in charge', role: 'admin' })
  })

  it.each([
    ['email', { email: 'new@example.com' }],
    ['password', { password: 'a new long password' }],
    ['password_hash', { password_hash: 'x' }],
    ['id', { id: randomUUID() }],
    ['created_at', { created_at: '2000-01-01T00:00:00Z' }],
    ['role', { role: 'owner' }],
  ])('rejects a change of %s with 422 and changes nothing', async (field, payload) => {
    const user = await createTestUser(t, 'viewer')
    const before = await rowOf(user.id)
    const response = await patch(user.id, payload)

    expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(errorPaths(response)).toContain(`body.${field}`)
    expect(await rowOf(user.id)).toEqual(before)
  })

  it('answers 404 USER_NOT_FOUND for an unknown id', async () => {
    expectProblem(await patch(randomUUID(), { full_name: 'Nobody' }), 404, 'USER_NOT_FOUND')
  })
})

describe('DELETE /v1/users/{id} (admin)', () => {
  it('deletes the user with their credentials, and answers 404 afterwards', async () => {
    const user = await createTestUser(t, 'user')
    const key = await createApiKey(user)

    const response = await asAdmin({ method: 'DELETE', url: `/v1/users/${user.id}` })

    expect(response.statusCode).toBe(204)
    expect(response.body).toBe('')
    expect(await rowOf(user.id)).toBeUndefined()
    expect(await liveCredentialRows(user.id)).toEqual({ refreshTokens: 0, apiKeys: 0 })
    expect(await credentialStatuses(user, key)).toEqual({ bearer: 401, apiKey: 401, refresh: 400 })
    expectProblem(await asAdmin({ url: `/v1/users/${user.id}` }), 404, 'USER_NOT_FOUND')
    expectProblem(
      await asAdmin({ method: 'DELETE', url: `/v1/users/${user.id}` }),
      404,
      'USER_NOT_FOUND',
    )
  })

  it('refuses to let an admin delete themselves with 409 SELF_LOCKOUT', async () => {
    const self = await createTestUser(t, 'admin')
    const response = await injectAs(t, self)({ method: 'DELETE', url: `/v1/users/${self.id}` })
    expectProblem(response, 409, 'SELF_LOCKOUT')
    expect(await rowOf(self.id)).toBeDefined()
  })

  it('applies the self-lockout rule to the admin’s own id written in capitals', async () => {
    const self = await createTestUser(t, 'admin')
    const before = await rowOf(self.id)
    const inject = injectAs(t, self)
    const shouted = `/v1/users/${self.id.toUpperCase()}`

    const deactivate = await inject({
      method: 'PATCH',
      url: shouted,
      payload: { is_active: false },
    })
    const demote = await inject({ method: 'PATCH', url: shouted, payload: { role: 'viewer' } })
    const remove = await inject({ method: 'DELETE', url: shouted })

    for (const response of [deactivate, demote, remove]) {
      expectProblem(response, 409, 'SELF_LOCKOUT')
    }
    expect(await rowOf(self.id)).toEqual(before)
    expect((await inject({ url: shouted })).json().id).toBe(self.id)
  })
})

describe('admin routes for other roles', () => {
  it.each(['user', 'viewer'] as const)(
    'answer 403 FORBIDDEN to a %s and change nothing',
    async (role) => {
      const caller = await createTestUser(t, role)
      const target = await createTestUser(t, 'viewer')
      const before = await rowOf(target.id)
      const as = injectAs(t, caller)
      const attempts = [
        as({ url: '/v1/users' }),
        as({ url: `/v1/users/${target.id}` }),
        as({ method: 'POST', url: '/v1/users', payload: newUser({ role: 'admin' }) }),
        as({ method: 'PATCH', url: `/v1/users/${target.id}`, payload: { role: 'admin' } }),
        as({ method: 'PATCH', url: `/v1/users/${caller.id}`, payload: { role: 'admin' } }),
        as({ method: 'DELETE', url: `/v1/users/${target.id}` }),
      ]

      for (const response of await Promise.all(attempts)) {
        expectProblem(response, 403, 'FORBIDDEN')
      }
      expect(await rowOf(target.id)).toEqual(before)
      expect((await rowOf(caller.id))?.role).toBe(role)
    },
  )
})
