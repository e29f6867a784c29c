import { and, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import { auditEvents, refreshTokens, users } from '../../db/schema/index.js'
import { hashSecret } from '../../shared/secrets.js'

let t: TestApp
let admin: TestUser
let asAdmin: ReturnType<typeof injectAs>

beforeAll(async () => {
  t = await buildTestApp()
  admin = await createTestUser(t, 'admin')
  asAdmin = injectAs(t, admin)
})
afterAll(() => t.close())

async function createProduct(overrides: Record<string, unknown> = {}) {
  const response = await asAdmin({
    method: 'POST',
    url: '/v1/products',
    payload: { sku: `AUD-${unique()}`, name: 'Audited', price: '10.00', stock: 3, ...overrides },
  })
  expect(response.statusCode).toBe(201)
  return response.json() as { id: string; sku: string }
}

const eventsFor = (resourceId: string) =>
  t.database.db
    .select()
    .from(auditEvents)
    .where(eq(auditEvents.resourceId, resourceId))
    .orderBy(auditEvents.at)

describe('audit events for products', () => {
  it('records create, update and delete with actor, request id, address and changes', async () => {
    const product = await createProduct()
    const update = await asAdmin({
      method: 'PATCH',
      url: `/v1/products/${product.id}`,
      payload: { price: '12.50', name: 'Audited' },
      headers: { 'x-request-id': `req-${unique()}` },
    })
    expect(update.statusCode).toBe(200)
    expect(
      (await asAdmin({ method: 'DELETE', url: `/v1/products/${product.id}` })).statusCode,
    ).toBe(204)

    const events = await eventsFor(product.id)
    expect(events.map((event) => event.action)).toEqual(['create', 'update', 'delete'])
    for (const event of events) {
      expect(event).toMatchObject({
        actorUserId: admin.id,
        actorApiKeyId: null,
        resourceType: 'product',
        clientAddress: '127.0.0.1',
      })
    }
    expect(events[0]?.changes).toMatchObject({
      sku: { after: product.sku },
      price: { after: '10.00' },
      stock: { after: 3 },
    })
    // Only the field that changed: the unchanged name is not recorded.
    expect(events[1]?.changes).toEqual({ price: { before: '10.00', after: '12.50' } })
    expect(events[1]?.requestId).toBe(update.headers['x-request-id'])
    expect(events[2]?.changes).toMatchObject({ price: { before: '12.50' } })
  })

  it('names the API key when the change came through one', async () => {
    const created = await asAdmin({
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: 'audit test' },
    })
    const key = created.json() as { id: string; key: string }
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/products',
      headers: { 'x-api-key': key.key },
      payload: { sku: `AUD-${unique()}`, name: 'Via key', price: '1.00' },
    })
    expect(response.statusCode).toBe(201)
    const [event] = await eventsFor(response.json().id)
    expect(event).toMatchObject({ actorUserId: admin.id, actorApiKeyId: key.id })
  })

  it('writes no event for a change that fails and rolls back', async () => {
    const first = await createProduct()
    const second = await createProduct()
    const conflict = await asAdmin({
      method: 'PATCH',
      url: `/v1/products/${second.id}`,
      payload: { sku: first.sku },
    })
    expect(conflict.statusCode).toBe(409)
    const events = await eventsFor(second.id)
    expect(events.map((event) => event.action)).toEqual(['create'])
  })
})

describe('audit events for users and API keys', () => {
  it('records registration with the new user as actor, and never a password or hash', async () => {
    const email = `audit-${unique().toLowerCase()}@example.com`
    const password = `secret-${unique()}-long`
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/register',
      payload: { email, password, full_name: 'Audited Person' },
    })
    expect(response.statusCode).toBe(201)
    const user = response.json()
    const [event] = await eventsFor(user.id)
    expect(event).toMatchObject({
      action: 'create',
      resourceType: 'user',
      actorUserId: user.id,
      changes: {
        email: { after: email },
        role: { after: 'user' },
        full_name: { after: 'Audited Person' },
        is_active: { after: true },
      },
    })

    const asUser = injectAs(t, {
      ...admin,
      headers: {
        authorization: `Bearer ${
          (
            await t.app.inject({
              method: 'POST',
              url: '/v1/auth/token',
              payload: { grant_type: 'password', username: email, password },
            })
          ).json().access_token
        }`,
      },
    })
    const newPassword = `changed-${unique()}-long`
    const change = await asUser({
      method: 'PATCH',
      url: '/v1/users/me',
      payload: { password: newPassword, current_password: password },
    })
    expect(change.statusCode).toBe(200)
    const events = await eventsFor(user.id)
    expect(events[1]).toMatchObject({
      action: 'update',
      actorUserId: user.id,
      changes: { password: { after: '[changed]' } },
    })
    const stored = JSON.stringify(events)
    expect(stored).not.toContain(password)
    expect(stored).not.toContain(newPassword)
    expect(stored).not.toContain('$argon2')
  })

  it('records admin changes to a user, and their deletion', async () => {
    const created = await asAdmin({
      method: 'POST',
      url: '/v1/users',
      payload: {
        email: `managed-${unique().toLowerCase()}@example.com`,
        password: 'a password long enough',
        full_name: 'Managed',
      },
    })
    const id = created.json().id
    await asAdmin({ method: 'PATCH', url: `/v1/users/${id}`, payload: { role: 'viewer' } })
    await asAdmin({ method: 'DELETE', url: `/v1/users/${id}` })
    const events = await eventsFor(id)
    expect(events.map((event) => [event.action, event.actorUserId])).toEqual([
      ['create', admin.id],
      ['update', admin.id],
      ['delete', admin.id],
    ])
    expect(events[1]?.changes).toEqual({ role: { before: 'user', after: 'viewer' } })
  })

  it('records API key creation and revocation, never the key or its hash', async () => {
    const created = await asAdmin({
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: 'audited key' },
    })
    const key = created.json() as { id: string; key: string; prefix: string }
    await asAdmin({ method: 'DELETE', url: `/v1/api-keys/${key.id}` })
    const events = await eventsFor(key.id)
    expect(events.map((event) => event.action)).toEqual(['create', 'delete'])
    expect(events[0]?.changes).toMatchObject({
      name: { after: 'audited key' },
      prefix: { after: key.prefix },
    })
    expect(JSON.stringify(events)).not.toContain(key.key.slice(key.prefix.length + 1))
  })
})

describe('GET /v1/audit-events', () => {
  it('lists events newest first, filtered by resource, action and actor', async () => {
    const product = await createProduct()
    await asAdmin({ method: 'PATCH', url: `/v1/products/${product.id}`, payload: { stock: 9 } })

    const response = await asAdmin({
      method: 'GET',
      url: `/v1/audit-events?resource_type=product&resource_id=${product.id}`,
    })
    expect(response.statusCode).toBe(200)
    const page = response.json()
    expect(page.total).toBe(2)
    expect(page.items.map((event: { action: string }) => event.action)).toEqual([
      'update',
      'create',
    ])
    expect(page.items[0]).toMatchObject({
      resource_type: 'product',
      resource_id: product.id,
      actor: { user_id: admin.id, api_key_id: null },
      changes: { stock: { before: 3, after: 9 } },
    })

    const byAction = await asAdmin({
      method: 'GET',
      url: `/v1/audit-events?action=update&resource_id=${product.id}&actor=${admin.id}`,
    })
    expect(byAction.json().total).toBe(1)
  })

  it('filters by a time range and refuses one that ends before it starts', async () => {
    const product = await createProduct()
    const future = new Date(Date.now() + 60_000).toISOString()
    const past = new Date(Date.now() - 60_000).toISOString()
    const inRange = await asAdmin({
      method: 'GET',
      url: `/v1/audit-events?resource_id=${product.id}&from=${past}&to=${future}`,
    })
    expect(inRange.json().total).toBe(1)
    const later = await asAdmin({
      method: 'GET',
      url: `/v1/audit-events?resource_id=${product.id}&from=${future}`,
    })
    expect(later.json().total).toBe(0)

    const reversed = await asAdmin({
      method: 'GET',
      url: `/v1/audit-events?from=${future}&to=${past}`,
    })
    expect(reversed.statusCode).toBe(422)
    expect(reversed.json().errors).toEqual([
      { path: 'query.from', message: 'must not be after to' },
    ])
  })

  it('is for admins only', async () => {
    for (const role of ['user', 'viewer'] as const) {
      const response = await injectAs(
        t,
        await createTestUser(t, role),
      )({
        method: 'GET',
        url: '/v1/audit-events',
      })
      expect(response.statusCode).toBe(403)
    }
  })
})

describe('audit events for sign-ins, refreshes and sign-outs', () => {
  function tokenRequest(fields: Record<string, string>, requestId = `req-${unique()}`) {
    return t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': requestId },
      payload: new URLSearchParams(fields).toString(),
    })
  }
  const eventsOf = (action: string, resourceId: string) =>
    t.database.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, action), eq(auditEvents.resourceId, resourceId)))
  async function sessionOf(refreshToken: string): Promise<string> {
    const [row] = await t.database.db
      .select({ familyId: refreshTokens.familyId })
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, hashSecret(refreshToken)))
    return row?.familyId as string
  }

  it('when a user signs in, then a sign_in event names them, the new session, the request and the address, never the password', async () => {
    const user = await createTestUser(t, 'user')
    const requestId = `req-${unique()}`
    const response = await tokenRequest(
      { grant_type: 'password', username: user.email, password: user.password },
      requestId,
    )
    const session = await sessionOf(response.json().refresh_token)
    const [event] = await eventsOf('sign_in', session)
    expect(event).toMatchObject({
      resourceType: 'session',
      actorUserId: user.id,
      actorApiKeyId: null,
      requestId,
      clientAddress: '127.0.0.1',
      changes: {},
    })
    expect(JSON.stringify(event)).not.toContain(user.password)
  })

  it('when a sign-in fails for an existing account, then sign_in_failed names the account and the reason, with no actor', async () => {
    const user = await createTestUser(t, 'user')
    const disabled = await createTestUser(t, 'user')
    await t.database.db.update(users).set({ isActive: false }).where(eq(users.id, disabled.id))
    await tokenRequest({
      grant_type: 'password',
      username: user.email,
      password: 'wrong-password-1',
    })
    await tokenRequest({
      grant_type: 'password',
      username: disabled.email,
      password: disabled.password,
    })

    const [wrong] = await eventsOf('sign_in_failed', user.id)
    expect(wrong).toMatchObject({
      resourceType: 'user',
      actorUserId: null,
      clientAddress: '127.0.0.1',
      changes: { reason: { after: 'wrong_password' } },
    })
    expect(JSON.stringify(wrong)).not.toContain('wrong-password-1')
    const [refused] = await eventsOf('sign_in_failed', disabled.id)
    expect(refused?.changes).toEqual({ reason: { after: 'account_disabled' } })
  })

  it('when the email names no account, then the event holds a digest of it, never the name or the password', async () => {
    const typed = `  Nobody-${unique()}@Example.com `
    const response = await tokenRequest({
      grant_type: 'password',
      username: typed,
      password: 'guess-password-1',
    })
    expect(response.json().error).toBe('invalid_grant')
    const digest = `sha256:${hashSecret(typed.trim().toLowerCase())}`
    const [event] = await eventsOf('sign_in_failed', digest)
    expect(event).toMatchObject({
      resourceType: 'user',
      actorUserId: null,
      changes: { reason: { after: 'unknown_account' } },
    })
    const stored = JSON.stringify(event).toLowerCase()
    expect(stored).not.toContain(typed.trim().toLowerCase())
    expect(stored).not.toContain('guess-password-1')
  })

  it('when a session is refreshed, then token_refresh names the user and the same session', async () => {
    const user = await createTestUser(t, 'viewer')
    const session = await sessionOf(user.refreshToken)
    const response = await tokenRequest({
      grant_type: 'refresh_token',
      refresh_token: user.refreshToken,
    })
    expect(response.statusCode).toBe(200)
    expect(await sessionOf(response.json().refresh_token)).toBe(session)
    const [event] = await eventsOf('token_refresh', session)
    expect(event).toMatchObject({ resourceType: 'session', actorUserId: user.id })
  })

  it('when a rotated refresh token comes back, then refresh_token_reused names whose session was cut', async () => {
    const user = await createTestUser(t, 'user')
    const session = await sessionOf(user.refreshToken)
    await tokenRequest({ grant_type: 'refresh_token', refresh_token: user.refreshToken })
    await tokenRequest({ grant_type: 'refresh_token', refresh_token: user.refreshToken })
    const [event] = await eventsOf('refresh_token_reused', session)
    expect(event).toMatchObject({ actorUserId: null, changes: { user_id: { after: user.id } } })
  })

  it('when a user signs out, then one sign_out event is written; a repeat or a foreign token writes none', async () => {
    const [user, other] = [await createTestUser(t, 'viewer'), await createTestUser(t, 'user')]
    const session = await sessionOf(user.refreshToken)
    const revoke = (as: TestUser, token: string) =>
      injectAs(t, as)({ method: 'POST', url: '/v1/auth/revoke', payload: { token } })
    expect((await revoke(other, user.refreshToken)).statusCode).toBe(200)
    expect(await eventsOf('sign_out', session)).toHaveLength(0)
    expect((await revoke(user, user.refreshToken)).statusCode).toBe(200)
    expect((await revoke(user, user.refreshToken)).statusCode).toBe(200)
    const events = await eventsOf('sign_out', session)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ resourceType: 'session', actorUserId: user.id })
  })

  it('when an admin lists sign-in events, then the API answers them with their actions and types', async () => {
    const user = await createTestUser(t, 'user')
    const response = await asAdmin({
      method: 'GET',
      url: `/v1/audit-events?action=sign_in&resource_type=session&actor=${user.id}`,
    })
    expect(response.statusCode).toBe(200)
    expect(response.json().items).toEqual([
      expect.objectContaining({
        action: 'sign_in',
        resource_type: 'session',
        actor: { user_id: user.id, api_key_id: null },
      }),
    ])
  })
})
