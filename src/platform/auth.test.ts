import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { HTTPMethods } from 'fastify'
import { SignJWT, UnsecuredJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, createTestUser, type TestApp, type TestUser } from '../../test/helpers.js'
import { DEVELOPMENT_JWT_SECRET } from '../config.js'
import type { Role } from '../shared/caller.js'

let t: TestApp
let owner: TestUser

interface Operation {
  method: HTTPMethods
  path: string
  secured: boolean
}

/** Every operation of the OpenAPI document, so a new route cannot escape these tests. */
let operations: Operation[]

beforeAll(async () => {
  // A database of its own: models active in a shared one would add their own predict
  // operations to the document this file reads its route list from.
  t = await buildTestApp({}, { privateDatabase: true })
  owner = await createTestUser(t, 'user')
  const document = (await t.app.inject({ url: '/openapi.json' })).json()
  operations = Object.entries(
    document.paths as Record<string, Record<string, { security?: unknown[] }>>,
  )
    .filter(([path]) => path.startsWith('/v1/') || path.startsWith('/v2'))
    .flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({
        method: method.toUpperCase() as HTTPMethods,
        path,
        secured: (op.security?.length ?? 0) > 0,
      })),
    )
})
afterAll(() => t.close())

/** The `METHOD /path` operations SECURITY.md names in the passage `pattern` captures. */
function documentedOperations(pattern: RegExp): string[] {
  const passage = pattern.exec(readFileSync('docs/SECURITY.md', 'utf8'))?.[1] ?? ''
  return [...passage.matchAll(/`([A-Z]+ \/[^`]+)`/g)].map((match) => match[1] as string).sort()
}

const urlOf = (path: string) => path.replace(/\{[^}]+\}/g, randomUUID())
const label = (op: Operation) => `${op.method} ${op.path}`

const secret = new TextEncoder().encode(DEVELOPMENT_JWT_SECRET)

function claims(overrides: Record<string, unknown> = {}) {
  return { role: 'admin', ver: 1, token_use: 'access', ...overrides }
}

function signed(
  options: {
    claims?: Record<string, unknown>
    alg?: string
    typ?: string
    key?: Uint8Array
    issuer?: string
    audience?: string
    expires?: number | string
    notBefore?: number | string
  } = {},
) {
  const jwt = new SignJWT(claims(options.claims))
    .setProtectedHeader({ alg: options.alg ?? 'HS256', typ: options.typ ?? 'at+jwt' })
    .setSubject(owner.id)
    .setIssuer(options.issuer ?? 'orderflow')
    .setAudience(options.audience ?? 'orderflow-api')
    .setIssuedAt()
    .setJti(randomUUID())
    .setExpirationTime(options.expires ?? '10m')
  if (options.notBefore !== undefined) jwt.setNotBefore(options.notBefore)
  return jwt.sign(options.key ?? secret)
}

async function badTokens(): Promise<Record<string, string>> {
  const valid = owner.headers.authorization.slice('Bearer '.length)
  const [header, payload, signature] = valid.split('.') as [string, string, string]
  const forged = Buffer.from(
    JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), role: 'admin' }),
  ).toString('base64url')
  return {
    'alg none': new UnsecuredJWT(claims())
      .setSubject(owner.id)
      .setIssuer('orderflow')
      .setAudience('orderflow-api')
      .setIssuedAt()
      .setExpirationTime('10m')
      .encode(),
    'another algorithm (HS512)': await signed({ alg: 'HS512' }),
    'another key': await signed({ key: new TextEncoder().encode('x'.repeat(64)) }),
    expired: await signed({ expires: Math.floor(Date.now() / 1000) - 3600 }),
    'not yet valid': await signed({ notBefore: Math.floor(Date.now() / 1000) + 3600 }),
    'tampered payload': `${header}.${forged}.${signature}`,
    'wrong issuer': await signed({ issuer: 'someone-else' }),
    'wrong audience': await signed({ audience: 'another-api' }),
    'not an access token (typ JWT)': await signed({ typ: 'JWT' }),
    'no token_use claim': await signed({ claims: { token_use: undefined } }),
    'stale auth version': await signed({ claims: { ver: 0 } }),
    garbage: 'not-a-jwt',
  }
}

describe('authentication on every protected route', () => {
  it('protects every /v1 and /v2 operation except the sign-on providers, registration, the token endpoint and the v2 probes', () => {
    const open = operations.filter((op) => !op.secured).map(label)
    expect(open.sort()).toEqual([
      'GET /v1/auth/oidc',
      'GET /v2',
      'GET /v2/health/live',
      'GET /v2/health/ready',
      'POST /v1/auth/register',
      'POST /v1/auth/token',
    ])
    expect(operations.length).toBeGreaterThan(10)
  })

  it('when a /v1 operation needs no caller, then SECURITY.md says so, and of no other', () => {
    const open = operations.filter((op) => !op.secured && op.path.startsWith('/v1/')).map(label)
    expect(documentedOperations(/need a\s+caller, except ([^.]*)\./)).toEqual(open.sort())
  })

  it('answers 401 with WWW-Authenticate and problem+json when no credentials are sent', async () => {
    for (const op of operations.filter((o) => o.secured)) {
      const response = await t.app.inject({ method: op.method, url: urlOf(op.path) })
      expect(response.statusCode, label(op)).toBe(401)
      expect(response.headers['www-authenticate'], label(op)).toMatch(/^Bearer /)
      expect(response.headers['content-type'], label(op)).toBe(
        'application/problem+json; charset=utf-8',
      )
      expect(response.json().code, label(op)).toBe('UNAUTHENTICATED')
    }
  })

  it('answers 401 to every kind of bad bearer token on every protected route', async () => {
    const tokens = await badTokens()
    for (const op of operations.filter((o) => o.secured)) {
      for (const [kind, token] of Object.entries(tokens)) {
        const response = await t.app.inject({
          method: op.method,
          url: urlOf(op.path),
          headers: { authorization: `Bearer ${token}` },
        })
        expect(response.statusCode, `${label(op)} with ${kind}`).toBe(401)
        expect(response.headers['www-authenticate'], `${label(op)} with ${kind}`).toMatch(
          /^Bearer /,
        )
      }
    }
  })

  it('accepts a correctly signed token, so the bad ones above fail for their flaw alone', async () => {
    const response = await t.app.inject({
      url: '/v1/users/me',
      headers: { authorization: `Bearer ${await signed({ claims: { role: 'user' } })}` },
    })
    expect(response.statusCode).toBe(200)
    expect(response.json().id).toBe(owner.id)
  })

  it('takes the role from the database, not from the token', async () => {
    const claimsAdmin = await signed({ claims: { role: 'admin' } })
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/products',
      headers: { authorization: `Bearer ${claimsAdmin}` },
      payload: {},
    })
    expect(response.statusCode).toBe(403)
  })

  it.each(['Basic dXNlcjpwYXNz', 'Bearer', 'Token abc'])(
    'answers 401 to the header Authorization: %s',
    async (value) => {
      const response = await t.app.inject({
        url: '/v1/users/me',
        headers: { authorization: value },
      })
      expect(response.statusCode).toBe(401)
    },
  )

  it('refuses credentials in the query string even when they are valid', async () => {
    const token = owner.headers.authorization.slice('Bearer '.length)
    const response = await t.app.inject({ url: `/v1/users/me?access_token=${token}` })
    expect(response.statusCode).toBe(401)
  })
})

describe('roles', () => {
  const everyone: Role[] = ['admin', 'user', 'viewer']
  const admins: Role[] = ['admin']
  const writers: Role[] = ['admin', 'user']
  /** Who may call what. A route missing here fails the coverage test below. */
  const matrix: Record<string, Role[]> = {
    'GET /v1/products': everyone,
    'GET /v1/products/{id}': everyone,
    'POST /v1/products': admins,
    'PATCH /v1/products/{id}': admins,
    'DELETE /v1/products/{id}': admins,
    'GET /v1/orders': everyone,
    'GET /v1/orders/{id}': everyone,
    'POST /v1/orders': writers,
    'PATCH /v1/orders/{id}': writers,
    'POST /v1/orders/{id}/status': writers,
    'DELETE /v1/orders/{id}': admins,
    'GET /v1/customers': everyone,
    'GET /v1/customers/{id}': everyone,
    'POST /v1/customers': writers,
    'PATCH /v1/customers/{id}': writers,
    'DELETE /v1/customers/{id}': writers,
    'GET /v1/users/me': everyone,
    'PATCH /v1/users/me': everyone,
    'GET /v1/users': admins,
    'POST /v1/users': admins,
    'GET /v1/users/{id}': admins,
    'PATCH /v1/users/{id}': admins,
    'DELETE /v1/users/{id}': admins,
    'POST /v1/api-keys': everyone,
    'GET /v1/api-keys': everyone,
    'DELETE /v1/api-keys/{id}': everyone,
    'POST /v1/auth/revoke': everyone,
    'GET /v1/audit-events': admins,
    'GET /v1/models': everyone,
    'GET /v1/models/{name}': everyone,
    'POST /v1/models': admins,
    'POST /v1/models/{name}/versions/{version}/activate': admins,
    'DELETE /v1/models/{name}/versions/{version}': admins,
    'POST /v1/models/{name}/predict': everyone,
    'POST /v1/models/{name}/predict/batch': everyone,
    'POST /v1/models/{name}/predict/image': everyone,
    'POST /v1/classify-image': everyone,
    'POST /v1/predict': everyone,
    'POST /v1/models/{name}/generate': everyone,
    'POST /v1/chat/completions': everyone,
    'GET /v2/models/{name}': everyone,
    'GET /v2/models/{name}/versions/{version}': everyone,
    'GET /v1/datasets': everyone,
    'POST /v1/datasets': writers,
    'POST /v1/datasets/batch': writers,
    'GET /v1/datasets/{id}': everyone,
    'PATCH /v1/datasets/{id}': writers,
    'DELETE /v1/datasets/{id}': writers,
    'GET /v1/datasets/{id}/rows': everyone,
    'GET /v1/datasets/{id}/download': everyone,
    'GET /v1/jobs': everyone,
    'POST /v1/jobs': writers,
    'GET /v1/jobs/{id}': everyone,
    'GET /v1/jobs/{id}/events': everyone,
    'POST /v1/jobs/{id}/cancel': writers,
    'GET /v1/models/{name}/ws': everyone,
    'GET /v1/models/{name}/predictions': admins,
    'GET /v1/models/{name}/drift': admins,
    'GET /v1/models/{name}/stats': everyone,
    'GET /v2/models/{name}/ready': everyone,
    'GET /v2/models/{name}/versions/{version}/ready': everyone,
    'POST /v2/models/{name}/infer': everyone,
    'POST /v2/models/{name}/versions/{version}/infer': everyone,
  }

  it('when a viewer may write through an operation, then SECURITY.md names it among the viewer’s writes', () => {
    const viewerWrites = Object.entries(matrix)
      .filter(([operation, roles]) => roles.includes('viewer') && !operation.startsWith('GET '))
      .map(([operation]) => operation)
      .filter(
        (operation) =>
          !/\/(predict|infer|generate|completions|classify-image)(\/|$)/.test(operation),
      )
    expect(documentedOperations(/viewers write only through[^:]*:([^—]*)—/)).toEqual(
      viewerWrites.sort(),
    )
  })

  it('has a rule for every protected operation', () => {
    const secured = operations.filter((op) => op.secured).map(label)
    // Named one by one, so a failure says which operation lacks a rule or has a stale one.
    const missing = secured.filter((operation) => !(operation in matrix)).sort()
    const stale = Object.keys(matrix).filter((operation) => !secured.includes(operation))
    expect({ missing, stale }).toEqual({ missing: [], stale: [] })
  })

  it('answers 403 exactly where a role is denied, and changes nothing there', async () => {
    const callers = {
      admin: await createTestUser(t, 'admin'),
      user: await createTestUser(t, 'user'),
      viewer: await createTestUser(t, 'viewer'),
    }
    for (const [operation, allowed] of Object.entries(matrix)) {
      const [method, path] = operation.split(' ') as [HTTPMethods, string]
      for (const role of everyone) {
        // An empty body and unknown ids: an allowed caller gets 2xx/404/422, never a change.
        const response = await t.app.inject({
          method,
          url: urlOf(path),
          headers: callers[role].headers,
          ...(method === 'GET' || method === 'DELETE' ? {} : { payload: {} }),
        })
        if (allowed.includes(role)) {
          expect(response.statusCode, `${operation} as ${role}`).not.toBe(403)
          expect(response.statusCode, `${operation} as ${role}`).not.toBe(401)
        } else {
          expect(response.statusCode, `${operation} as ${role}`).toBe(403)
          expect(response.json().code).toBe('FORBIDDEN')
        }
      }
    }
  })
})

describe('OpenAPI security schemes', () => {
  it('declares OAuth2 password, bearer and API key schemes, and what each operation accepts', async () => {
    const document = (await t.app.inject({ url: '/openapi.json' })).json()
    expect(document.components.securitySchemes.OAuth2PasswordBearer.flows.password.tokenUrl).toBe(
      '/v1/auth/token',
    )
    expect(document.components.securitySchemes.BearerAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    })
    expect(document.components.securitySchemes.ApiKeyAuth).toMatchObject({
      type: 'apiKey',
      in: 'header',
      name: 'X-API-Key',
    })
    const me = document.paths['/v1/users/me'].get
    expect(me.security).toEqual([
      { OAuth2PasswordBearer: [] },
      { BearerAuth: [] },
      { ApiKeyAuth: [] },
    ])
    expect(me.responses['401']).toBeDefined()
  })
})
