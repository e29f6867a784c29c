import { eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, createTestUser, type TestApp, unique } from '../../../test/helpers.js'
import {
  API_AUDIENCE,
  BROWSER_CLIENT,
  startTestProvider,
  type TestProvider,
} from '../../../test/oidc-provider.js'
import { userIdentities, users } from '../../db/schema/index.js'

let provider: TestProvider
let t: TestApp
const clients = {
  writer: `writer-${unique().toLowerCase()}`,
  admin: `admin-bot-${unique().toLowerCase()}`,
  stranger: `stranger-${unique().toLowerCase()}`,
  disabled: `disabled-${unique().toLowerCase()}`,
}

function env(serviceTokens: Record<string, unknown> | undefined) {
  return {
    PUBLIC_URL: 'http://orderflow.test',
    OIDC_PROVIDERS: JSON.stringify([
      {
        name: 'corp',
        issuer: provider.issuer,
        client_id: BROWSER_CLIENT.id,
        login: false,
        ...(serviceTokens ? { service_tokens: serviceTokens } : {}),
      },
    ]),
  }
}

const SERVICE_TOKENS = {
  audience: API_AUDIENCE,
  role_claim: 'roles',
  role_map: { 'Orders.Write': 'user', 'Orders.Admin': 'admin' },
}

function as(app: TestApp, token: string) {
  return (url: string, method: 'GET' | 'POST' = 'GET', payload?: object) =>
    app.app.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } })
}

beforeAll(async () => {
  provider = await startTestProvider({
    redirectUri: 'http://orderflow.test/v1/auth/oidc/corp/callback',
    serviceClients: {
      [clients.writer]: ['Orders.Write'],
      [clients.admin]: ['Orders.Admin', 'Orders.Write'],
      [clients.stranger]: ['Something.Else'],
      [clients.disabled]: ['Orders.Write'],
    },
  })
  t = await buildTestApp(env(SERVICE_TOKENS))
})
afterAll(async () => {
  await t?.close()
  await provider?.close()
})

describe('provider access tokens for services (client credentials)', () => {
  it('when a service presents its client-credentials token, then /v1 accepts it with the mapped role', async () => {
    const call = as(t, await provider.clientCredentialsToken(clients.writer))

    const created = await call('/v1/customers', 'POST', {
      name: 'Service-made customer',
      email: `svc-${unique().toLowerCase()}@example.com`,
    })
    const adminOnly = await call('/v1/users')

    expect(created.statusCode).toBe(201)
    expect(adminOnly.statusCode).toBe(403)
  })

  it('when the token maps to admin, then admin routes answer', async () => {
    const call = as(t, await provider.clientCredentialsToken(clients.admin))

    expect((await call('/v1/users')).statusCode).toBe(200)
  })

  it('when a service calls again with a new token, then it is the same service principal, a user without password', async () => {
    const first = await as(t, await provider.clientCredentialsToken(clients.writer))('/v1/users/me')
    const second = await as(
      t,
      await provider.clientCredentialsToken(clients.writer),
    )('/v1/users/me')

    expect(first.statusCode).toBe(200)
    expect(second.json().id).toBe(first.json().id)
    const links = await t.database.db
      .select()
      .from(userIdentities)
      .where(eq(userIdentities.subject, clients.writer))
    expect(links).toMatchObject([{ provider: 'corp', userId: first.json().id }])
    const [row] = await t.database.db.select().from(users).where(eq(users.id, first.json().id))
    expect(row?.passwordHash).toBeNull()
    expect(row?.email).toMatch(/^service-[0-9a-f]{24}@corp\.invalid$/)
  })

  it('when the token was issued for another audience, then it is refused with 401', async () => {
    const token = await provider.clientCredentialsToken(clients.writer, 'api://another-api')

    const response = await as(t, token)('/v1/products')

    expect(response.statusCode).toBe(401)
    expect(response.json().code).toBe('UNAUTHENTICATED')
    expect(response.headers['www-authenticate']).toContain('Bearer')
  })

  it('when the token’s roles map to no role and no default is set, then 403', async () => {
    const response = await as(
      t,
      await provider.clientCredentialsToken(clients.stranger),
    )('/v1/products')

    expect(response.statusCode).toBe(403)
    expect(response.json().code).toBe('FORBIDDEN')
  })

  it('when a default role is configured, then an unmapped service gets it', async () => {
    const withDefault = await buildTestApp(env({ ...SERVICE_TOKENS, default_role: 'viewer' }), {
      database: t.database,
    })
    try {
      const call = as(withDefault, await provider.clientCredentialsToken(clients.stranger))
      expect((await call('/v1/products')).statusCode).toBe(200)
      expect(
        (await call('/v1/customers', 'POST', { name: 'x', email: 'x@example.com' })).statusCode,
      ).toBe(403)
    } finally {
      await withDefault.close()
    }
  })

  it('when an admin deactivates the service principal, then its tokens are refused', async () => {
    const token = await provider.clientCredentialsToken(clients.disabled)
    const me = await as(t, token)('/v1/users/me')
    const admin = await createTestUser(t, 'admin')

    const deactivated = await t.app.inject({
      method: 'PATCH',
      url: `/v1/users/${me.json().id}`,
      headers: admin.headers,
      payload: { is_active: false },
    })
    const response = await as(t, token)('/v1/products')

    expect(deactivated.statusCode).toBe(200)
    expect(response.statusCode).toBe(401)
  })

  it('when service tokens are not configured, then a provider token is refused and local tokens still work', async () => {
    const off = await buildTestApp(env(undefined), { database: t.database })
    try {
      const token = await provider.clientCredentialsToken(clients.writer)
      const local = await createTestUser(off, 'viewer')

      expect((await as(off, token)('/v1/products')).statusCode).toBe(401)
      expect(
        (await off.app.inject({ url: '/v1/products', headers: local.headers })).statusCode,
      ).toBe(200)
    } finally {
      await off.close()
    }
  })

  it('when a local token is presented while service tokens are on, then it is verified as before', async () => {
    const local = await createTestUser(t, 'viewer')

    const response = await t.app.inject({ url: '/v1/users/me', headers: local.headers })

    expect(response.statusCode).toBe(200)
    expect(response.json().id).toBe(local.id)
  })

  it('when a token names no known issuer or is no JWT, then it is refused with 401', async () => {
    for (const token of [
      'not-a-jwt',
      'a.b.c',
      `x.${Buffer.from('{"iss":"https://evil"}').toString('base64url')}.y`,
    ]) {
      const response = await as(t, token)('/v1/products')
      expect(response.statusCode).toBe(401)
    }
  })
})
