import { and, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, createTestUser, login, type TestApp, unique } from '../../../test/helpers.js'
import {
  BROWSER_CLIENT,
  createBrowser,
  PUBLIC_CLIENT_ID,
  startTestProvider,
  type TestProvider,
} from '../../../test/oidc-provider.js'
import { auditEvents, userIdentities, users } from '../../db/schema/index.js'
import { codeChallengeOf } from './provider-client.js'

const PUBLIC_URL = 'http://orderflow.test'
const CONSOLE = `${PUBLIC_URL}/console/signed-in`
const CALLBACK = `${PUBLIC_URL}/v1/auth/oidc/test/callback`

let provider: TestProvider
let t: TestApp

function providersJson(overrides: Record<string, unknown> = {}) {
  return JSON.stringify([
    {
      name: 'test',
      display_name: 'Test provider',
      issuer: provider.issuer,
      client_id: BROWSER_CLIENT.id,
      scopes: ['openid', 'email', 'profile', 'roles'],
      role_claim: 'roles',
      role_map: {
        'OrderFlow.Admin': 'admin',
        'OrderFlow.User': 'user',
        'OrderFlow.Viewer': 'viewer',
      },
      ...overrides,
    },
  ])
}

function ssoEnv(overrides: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  return {
    PUBLIC_URL,
    OIDC_PROVIDERS: providersJson(overrides),
    OIDC_TEST_CLIENT_SECRET: BROWSER_CLIENT.secret,
    OIDC_CLIENT_REDIRECT_URIS: CONSOLE,
    ...env,
  }
}

/** A person at the provider (the shared one unless `at`), with a unique login, subject and email. */
function person(
  fields: { roles?: string[]; email?: string; email_verified?: boolean } = {},
  at: TestProvider = provider,
) {
  const id = unique().toLowerCase()
  // The test provider's login page takes the account id, which becomes the subject.
  const login = `person-${id}`
  const account = {
    sub: login,
    email: fields.email ?? `${login}@example.com`,
    email_verified: fields.email_verified ?? true,
    name: `Person ${id}`,
    roles: fields.roles ?? ['OrderFlow.User'],
  }
  at.addAccount(login, account)
  return { login, ...account }
}

/** A form post to the token endpoint, as OAuth clients send one. */
async function tokenRequest(app: TestApp, fields: Record<string, string>) {
  return app.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(fields).toString(),
  })
}

async function exchange(app: TestApp, fields: Record<string, string>) {
  return tokenRequest(app, { grant_type: 'authorization_code', ...fields })
}

function codeOf(location: string | undefined): string {
  const code = new URL(location ?? 'http://missing').searchParams.get('code')
  if (!code) throw new Error(`no code in ${location}`)
  return code
}

/** A refused browser sign-in: its problem, no user for the email, and the reason audited. */
async function expectRefusedSignIn(
  response: { status: number; body: string },
  refusal: { status: number; code: string; reason: string },
  email: string,
) {
  expect(response.status).toBe(refusal.status)
  expect(JSON.parse(response.body).code).toBe(refusal.code)
  expect(await t.database.db.select().from(users).where(eq(users.email, email))).toEqual([])
  const events = await failuresFor(t, 'oidc:test')
  expect(events.some((event) => event.changes.reason?.after === refusal.reason)).toBe(true)
}

async function failuresFor(app: TestApp, resourceId: string) {
  return app.database.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.action, 'sign_in_failed'), eq(auditEvents.resourceId, resourceId)))
}

beforeAll(async () => {
  provider = await startTestProvider({ redirectUri: CALLBACK, postLogoutRedirectUris: [CONSOLE] })
  t = await buildTestApp(ssoEnv())
})
afterAll(async () => {
  await t?.close()
  await provider?.close()
})

describe('sign-in with a provider (authorization code + PKCE)', () => {
  it('when the login starts, then it redirects with state, nonce and an S256 challenge and sets a signed HttpOnly SameSite=Lax cookie', async () => {
    const response = await t.app.inject({ url: '/v1/auth/oidc/test/login' })

    expect(response.statusCode).toBe(302)
    const location = new URL(response.headers.location as string)
    expect(location.origin).toBe(provider.issuer)
    expect(Object.fromEntries(location.searchParams)).toMatchObject({
      response_type: 'code',
      client_id: BROWSER_CLIENT.id,
      redirect_uri: CALLBACK,
      scope: 'openid email profile roles',
      code_challenge_method: 'S256',
    })
    expect(location.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(location.searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(location.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const cookie = String(response.headers['set-cookie'])
    expect(cookie).toMatch(/^oidc_login=[^;]+\.[^;]+;/)
    expect(cookie).toContain('HttpOnly')
    expect(cookie).toContain('SameSite=Lax')
    expect(cookie).toContain('Path=/v1/auth/oidc/test/callback')
    expect(cookie).toContain('Max-Age=600')
  })

  it('when a person signs in the first time, then a user is created with the mapped role and no password, and the one-time code gives working tokens', async () => {
    const someone = person({ roles: ['OrderFlow.Viewer'] })
    const browser = createBrowser(t, PUBLIC_URL)

    const callback = await browser.signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login?state=console-state`,
      someone.login,
    )

    expect(callback.status).toBe(302)
    const back = new URL(callback.location as string)
    expect(back.origin + back.pathname).toBe(CONSOLE)
    expect(back.searchParams.get('state')).toBe('console-state')
    expect(back.searchParams.has('access_token')).toBe(false)
    expect(browser.cookies(PUBLIC_URL).has('oidc_login')).toBe(false)

    const tokens = await exchange(t, { code: codeOf(callback.location), redirect_uri: CONSOLE })
    expect(tokens.statusCode).toBe(200)
    expect(tokens.headers['cache-control']).toBe('no-store')
    const me = await t.app.inject({
      url: '/v1/users/me',
      headers: { authorization: `Bearer ${tokens.json().access_token}` },
    })
    expect(me.statusCode).toBe(200)
    expect(me.json()).toMatchObject({
      email: someone.email,
      full_name: someone.name,
      role: 'viewer',
    })

    const [row] = await t.database.db.select().from(users).where(eq(users.email, someone.email))
    expect(row?.passwordHash).toBeNull()
    const identities = await t.database.db
      .select()
      .from(userIdentities)
      .where(eq(userIdentities.subject, someone.sub))
    expect(identities).toMatchObject([{ provider: 'test', userId: row?.id }])
  })

  it('when the same person signs in again, then the same user is used and its role follows the provider', async () => {
    const someone = person({ roles: ['OrderFlow.User'] })
    const first = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )
    const firstTokens = (await exchange(t, { code: codeOf(first.location) })).json()
    provider.addAccount(someone.login, { ...someone, roles: ['OrderFlow.Admin', 'OrderFlow.User'] })

    const second = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )
    const secondTokens = (await exchange(t, { code: codeOf(second.location) })).json()

    const me = (token: string) =>
      t.app.inject({ url: '/v1/users/me', headers: { authorization: `Bearer ${token}` } })
    const [before, after] = [
      (await me(firstTokens.access_token)).json(),
      (await me(secondTokens.access_token)).json(),
    ]
    expect(after.id).toBe(before.id)
    expect(after.role).toBe('admin')
    const rows = await t.database.db.select().from(users).where(eq(users.email, someone.email))
    expect(rows).toHaveLength(1)
  })

  it('when a one-time code is redeemed twice, then the second answer is invalid_grant', async () => {
    const someone = person()
    const callback = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )
    const code = codeOf(callback.location)

    expect((await exchange(t, { code })).statusCode).toBe(200)
    const replay = await exchange(t, { code })

    expect(replay.statusCode).toBe(400)
    expect(replay.json().error).toBe('invalid_grant')
  })

  it('when the front end sent a PKCE challenge, then only its verifier redeems the code, and a wrong one burns the code', async () => {
    const someone = person()
    const verifier = 'a-front-end-verifier-that-is-long-enough-to-be-valid-1234567890'
    const url = `${PUBLIC_URL}/v1/auth/oidc/test/login?code_challenge=${codeChallengeOf(verifier)}&code_challenge_method=S256`
    const first = await createBrowser(t, PUBLIC_URL).signIn(url, someone.login)
    const second = await createBrowser(t, PUBLIC_URL).signIn(url, someone.login)

    const wrong = await exchange(t, { code: codeOf(first.location), code_verifier: `${verifier}x` })
    const retried = await exchange(t, { code: codeOf(first.location), code_verifier: verifier })
    const right = await exchange(t, { code: codeOf(second.location), code_verifier: verifier })

    expect(wrong.json().error).toBe('invalid_grant')
    expect(retried.json().error).toBe('invalid_grant')
    expect(right.statusCode).toBe(200)
  })

  it('when the code is redeemed with another redirect_uri, then it is refused', async () => {
    const someone = person()
    const callback = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )

    const response = await exchange(t, {
      code: codeOf(callback.location),
      redirect_uri: 'http://evil.test/steal',
    })

    expect(response.json().error).toBe('invalid_grant')
  })

  it('when the sign-in named its redirect_uri, then redeeming the code must name it too (RFC 6749 §4.1.3)', async () => {
    const someone = person()
    const url = `${PUBLIC_URL}/v1/auth/oidc/test/login?redirect_uri=${encodeURIComponent(CONSOLE)}`
    const first = await createBrowser(t, PUBLIC_URL).signIn(url, someone.login)
    const second = await createBrowser(t, PUBLIC_URL).signIn(url, someone.login)

    const without = await exchange(t, { code: codeOf(first.location) })
    const named = await exchange(t, { code: codeOf(second.location), redirect_uri: CONSOLE })

    expect(without.statusCode).toBe(400)
    expect(without.json().error).toBe('invalid_grant')
    expect(named.statusCode).toBe(200)
  })

  it('when the redirect_uri is not an allowed front-end URL, then the login answers 400 OIDC_REDIRECT_URI_NOT_ALLOWED', async () => {
    const response = await t.app.inject({
      url: `/v1/auth/oidc/test/login?redirect_uri=${encodeURIComponent('http://evil.test/')}`,
    })

    expect(response.statusCode).toBe(400)
    expect(response.json().code).toBe('OIDC_REDIRECT_URI_NOT_ALLOWED')
    expect(response.headers['set-cookie']).toBeUndefined()
  })

  it('when the provider is unknown, then the login answers 404 OIDC_PROVIDER_NOT_FOUND', async () => {
    const response = await t.app.inject({ url: '/v1/auth/oidc/nobody/login' })

    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('OIDC_PROVIDER_NOT_FOUND')
  })

  it('when the providers are listed, then each comes with its login URL', async () => {
    const response = await t.app.inject({ url: '/v1/auth/oidc' })

    expect(response.statusCode).toBe(200)
    expect(response.json()).toEqual({
      items: [
        { name: 'test', display_name: 'Test provider', login_url: '/v1/auth/oidc/test/login' },
      ],
    })
  })
})

describe('a callback that cannot be trusted', () => {
  /**
   * Runs a sign-in up to the provider's redirect back, without following it; `authorization`
   * may change the service's authorization request on its way to the provider.
   */
  async function callbackUrlFor(login: string, authorization?: (url: URL) => void) {
    const browser = createBrowser(t, PUBLIC_URL)
    let response = await browser.request(`${PUBLIC_URL}/v1/auth/oidc/test/login`)
    if (authorization && response.location) {
      const url = new URL(response.location)
      authorization(url)
      response = { ...response, location: url.href }
    }
    for (let step = 0; step < 20 && !response.location?.startsWith(CALLBACK); step++) {
      if (response.location) {
        response = await browser.request(new URL(response.location, response.url).href)
        continue
      }
      const action = /<form[^>]*action="([^"]+)"/.exec(response.body)?.[1] as string
      const prompt = /name="prompt" value="([a-z]+)"/.exec(response.body)?.[1] as string
      response = await browser.request(new URL(action, response.url).href, {
        method: 'POST',
        form: prompt === 'login' ? { prompt, login, password: 'any' } : { prompt },
      })
    }
    return { browser, callback: new URL(response.location as string) }
  }

  it('when the state was tampered with, then 400 OIDC_LOGIN_STATE_INVALID, no user, and an audit event', async () => {
    const someone = person()
    const { browser, callback } = await callbackUrlFor(someone.login)
    callback.searchParams.set('state', 'tampered')

    const response = await browser.request(callback.href)

    await expectRefusedSignIn(
      response,
      { status: 400, code: 'OIDC_LOGIN_STATE_INVALID', reason: 'state_mismatch' },
      someone.email,
    )
  })

  it('when the login cookie is missing (another browser), then 400 OIDC_LOGIN_STATE_INVALID', async () => {
    const someone = person()
    const { callback } = await callbackUrlFor(someone.login)

    const response = await t.app.inject({ url: callback.pathname + callback.search })

    expect(response.statusCode).toBe(400)
    expect(response.json().code).toBe('OIDC_LOGIN_STATE_INVALID')
  })

  it('when the login cookie was forged, then 400 OIDC_LOGIN_STATE_INVALID', async () => {
    const someone = person()
    const { browser, callback } = await callbackUrlFor(someone.login)
    const cookie = browser.cookies(PUBLIC_URL).get('oidc_login') as string
    const [data] = cookie.split('.')
    const forged = JSON.parse(Buffer.from(data as string, 'base64url').toString())
    forged.nonce = 'attacker-nonce'
    const forgedValue = `${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${cookie.split('.')[1]}`

    const response = await t.app.inject({
      url: callback.pathname + callback.search,
      headers: { cookie: `oidc_login=${forgedValue}` },
    })

    expect(response.statusCode).toBe(400)
    expect(response.json().code).toBe('OIDC_LOGIN_STATE_INVALID')
  })

  it('when the provider code is replayed, then the provider refuses it and the answer is 401 OIDC_ID_TOKEN_INVALID', async () => {
    const someone = person()
    const { browser, callback } = await callbackUrlFor(someone.login)
    const cookie = browser.cookies(PUBLIC_URL).get('oidc_login') as string

    const first = await browser.request(callback.href)
    const replay = await t.app.inject({
      url: callback.pathname + callback.search,
      headers: { cookie: `oidc_login=${cookie}` },
    })

    expect(first.status).toBe(302)
    expect(replay.statusCode).toBe(401)
    expect(replay.json().code).toBe('OIDC_ID_TOKEN_INVALID')
    const events = await failuresFor(t, 'oidc:test')
    expect(
      events.some((event) => event.changes.reason?.after === 'token_endpoint_invalid_grant'),
    ).toBe(true)
  })

  it('when the provider issues the ID token for another nonce, then 401 OIDC_ID_TOKEN_INVALID, no user, and an audit event', async () => {
    const someone = person()
    // What an injected code from another sign-in carries: an ID token for that sign-in's nonce.
    const { browser, callback } = await callbackUrlFor(someone.login, (authorization) =>
      authorization.searchParams.set('nonce', 'the-nonce-of-another-sign-in'),
    )

    const response = await browser.request(callback.href)

    await expectRefusedSignIn(
      response,
      { status: 401, code: 'OIDC_ID_TOKEN_INVALID', reason: 'nonce_mismatch' },
      someone.email,
    )
  })

  it('when the person cancels at the provider (access_denied), then 403 OIDC_PROVIDER_DENIED, audited', async () => {
    const someone = person()

    const response = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
      {
        abort: true,
      },
    )

    expect(response.status).toBe(403)
    expect(response.contentType).toContain('application/problem+json')
    expect(JSON.parse(response.body).code).toBe('OIDC_PROVIDER_DENIED')
    const events = await failuresFor(t, 'oidc:test')
    expect(events.some((event) => event.changes.reason?.after === 'provider_access_denied')).toBe(
      true,
    )
  })
})

describe('role mapping and accounts', () => {
  it('when no role claim value is mapped and there is no default, then 403 OIDC_ROLE_UNMAPPED and no user', async () => {
    const someone = person({ roles: ['Some.Other.App'] })

    const response = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )

    expect(response.status).toBe(403)
    expect(JSON.parse(response.body).code).toBe('OIDC_ROLE_UNMAPPED')
    expect(await t.database.db.select().from(users).where(eq(users.email, someone.email))).toEqual(
      [],
    )
    expect(await failuresFor(t, `test:${someone.sub}`)).toHaveLength(1)
  })

  it('when no value is mapped but a default role is configured, then the user gets the default', async () => {
    const withDefault = await buildTestApp(ssoEnv({ default_role: 'viewer' }), {
      database: t.database,
    })
    try {
      const someone = person({ roles: [] })
      const callback = await createBrowser(withDefault, PUBLIC_URL).signIn(
        `${PUBLIC_URL}/v1/auth/oidc/test/login`,
        someone.login,
      )
      expect(callback.status).toBe(302)
      const [row] = await t.database.db.select().from(users).where(eq(users.email, someone.email))
      expect(row?.role).toBe('viewer')
    } finally {
      await withDefault.close()
    }
  })

  it('when a local account has the same email and linking is off, then 409 OIDC_ACCOUNT_EXISTS and the account is not taken over', async () => {
    const local = await createTestUser(t, 'admin')
    const someone = person({ email: local.email, roles: ['OrderFlow.Admin'] })

    const response = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )

    expect(response.status).toBe(409)
    expect(JSON.parse(response.body).code).toBe('OIDC_ACCOUNT_EXISTS')
    const links = await t.database.db
      .select()
      .from(userIdentities)
      .where(eq(userIdentities.userId, local.id))
    expect(links).toEqual([])
  })

  it('when linking by verified email is allowed, then an unverified email is still refused and a verified one links the account', async () => {
    const linking = await buildTestApp(ssoEnv({ link_verified_email: true }), {
      database: t.database,
    })
    try {
      const local = await createTestUser(t, 'user')
      const unverified = person({ email: local.email, email_verified: false })
      const verified = person({ email: local.email, email_verified: true })
      const signIn = (login: string) =>
        createBrowser(linking, PUBLIC_URL).signIn(`${PUBLIC_URL}/v1/auth/oidc/test/login`, login)

      const refused = await signIn(unverified.login)
      const linked = await signIn(verified.login)

      expect(JSON.parse(refused.body).code).toBe('OIDC_ACCOUNT_EXISTS')
      expect(linked.status).toBe(302)
      const links = await t.database.db
        .select()
        .from(userIdentities)
        .where(eq(userIdentities.userId, local.id))
      expect(links).toMatchObject([{ subject: verified.sub }])
      // The password still works: linking adds a way in, it takes none away.
      await expect(login(t, local.email, local.password)).resolves.toHaveProperty('access_token')
    } finally {
      await linking.close()
    }
  })

  it('when a linked user has been deactivated, then signing in answers 403 OIDC_ACCOUNT_DISABLED', async () => {
    const someone = person()
    const first = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )
    expect(first.status).toBe(302)
    await t.database.db.update(users).set({ isActive: false }).where(eq(users.email, someone.email))

    const second = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )

    expect(second.status).toBe(403)
    expect(JSON.parse(second.body).code).toBe('OIDC_ACCOUNT_DISABLED')
  })

  it('when a user created by single sign-on tries the password grant, then it fails like a wrong password', async () => {
    const someone = person()
    await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )

    const anyPassword = await tokenRequest(t, {
      grant_type: 'password',
      username: someone.email,
      password: 'any password at all',
    })

    expect(anyPassword.json()).toMatchObject({ error: 'invalid_grant' })
  })
})

describe('logout and password login', () => {
  it('when the provider offers an end-session endpoint, then logout redirects there with the client id', async () => {
    const response = await t.app.inject({
      url: `/v1/auth/oidc/test/logout?post_logout_redirect_uri=${encodeURIComponent(CONSOLE)}`,
    })

    expect(response.statusCode).toBe(302)
    const location = new URL(response.headers.location as string)
    expect(location.origin).toBe(provider.issuer)
    expect(location.searchParams.get('client_id')).toBe(BROWSER_CLIENT.id)
    expect(location.searchParams.get('post_logout_redirect_uri')).toBe(CONSOLE)
    const atProvider = await fetch(location, { redirect: 'manual' })
    expect(atProvider.status).toBe(200)
  })

  it('when a single sign-on session logs out, then its refresh token is revoked like any other', async () => {
    const someone = person()
    const callback = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )
    const tokens = (await exchange(t, { code: codeOf(callback.location) })).json()

    const revoked = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/revoke',
      headers: { authorization: `Bearer ${tokens.access_token}` },
      payload: { token: tokens.refresh_token },
    })
    const refresh = await tokenRequest(t, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token,
    })

    expect(revoked.statusCode).toBe(200)
    expect(refresh.json().error).toBe('invalid_grant')
  })

  it('when the post-logout URL is not allowed, then 400 OIDC_REDIRECT_URI_NOT_ALLOWED', async () => {
    const response = await t.app.inject({
      url: `/v1/auth/oidc/test/logout?post_logout_redirect_uri=${encodeURIComponent('http://evil.test/')}`,
    })

    expect(response.statusCode).toBe(400)
    expect(response.json().code).toBe('OIDC_REDIRECT_URI_NOT_ALLOWED')
  })

  it('when PASSWORD_LOGIN_ENABLED is false, then the password grant is refused with unsupported_grant_type, sign-up is closed and sign-in still works', async () => {
    const ssoOnly = await buildTestApp(ssoEnv({}, { PASSWORD_LOGIN_ENABLED: 'false' }), {
      database: t.database,
    })
    try {
      const local = await createTestUser(t, 'user')
      const password = await tokenRequest(ssoOnly, {
        grant_type: 'password',
        username: local.email,
        password: local.password,
      })
      const someone = person()
      const callback = await createBrowser(ssoOnly, PUBLIC_URL).signIn(
        `${PUBLIC_URL}/v1/auth/oidc/test/login`,
        someone.login,
      )

      expect(password.statusCode).toBe(400)
      expect(password.json()).toEqual({
        error: 'unsupported_grant_type',
        error_description: 'Password sign-in is switched off here; sign in with single sign-on.',
      })
      expect((await exchange(ssoOnly, { code: codeOf(callback.location) })).statusCode).toBe(200)
      // Sign-up makes password accounts, which could not sign in here.
      const signUp = await ssoOnly.app.inject({
        method: 'POST',
        url: '/v1/auth/register',
        payload: {
          email: `new-${unique()}@example.com`,
          password: 'a-long-password-1',
          full_name: 'New',
        },
      })
      expect(signUp.statusCode).toBe(403)
    } finally {
      await ssoOnly.close()
    }
  })
})

describe('another provider: a public client, key rotation, no end-session endpoint', () => {
  let other: TestProvider
  let app: TestApp
  beforeAll(async () => {
    other = await startTestProvider({ redirectUri: CALLBACK, endSession: false })
    // No client secret: the provider's client is public and PKCE alone protects the code.
    const { OIDC_TEST_CLIENT_SECRET: _, ...env } = ssoEnv(
      { issuer: other.issuer, client_id: PUBLIC_CLIENT_ID },
      // Every unknown kid may fetch the keys: the cooldown has its own test (id-tokens).
      { OIDC_JWKS_COOLDOWN_MS: '0' },
    )
    app = await buildTestApp(env, { database: t.database })
  })
  afterAll(async () => {
    await app?.close()
    await other?.close()
  })

  it('when the client has no secret, then the sign-in completes with PKCE alone', async () => {
    const someone = person({ roles: ['OrderFlow.Admin'] }, other)

    const callback = await createBrowser(app, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login`,
      someone.login,
    )

    expect(callback.status).toBe(302)
    const tokens = await exchange(app, { code: codeOf(callback.location) })
    expect(tokens.statusCode).toBe(200)
    const [row] = await t.database.db.select().from(users).where(eq(users.email, someone.email))
    expect(row?.role).toBe('admin')
  })

  it('when the provider rotates its signing key between two sign-ins, then the unknown kid fetches the key set once and the sign-in succeeds', async () => {
    const someone = person({}, other)
    const signIn = () =>
      createBrowser(app, PUBLIC_URL).signIn(`${PUBLIC_URL}/v1/auth/oidc/test/login`, someone.login)
    expect((await signIn()).status).toBe(302)
    const fetchedBefore = other.jwksRequests

    await other.rotateKeys('rotated-key')
    const afterRotation = await signIn()

    expect(afterRotation.status).toBe(302)
    expect(codeOf(afterRotation.location)).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(other.jwksRequests).toBe(fetchedBefore + 1)
  })

  it('when the provider publishes no end-session endpoint, then logout answers 404 OIDC_LOGOUT_UNSUPPORTED', async () => {
    const response = await app.app.inject({ url: '/v1/auth/oidc/test/logout' })

    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('OIDC_LOGOUT_UNSUPPORTED')
  })
})

describe('Swagger UI', () => {
  it('when providers are configured, then the OpenAPI document offers the authorization code flow through the sign-in', async () => {
    const document = (await t.app.inject({ url: '/openapi.json' })).json()

    expect(document.components.securitySchemes.SingleSignOn).toEqual({
      type: 'oauth2',
      description: expect.any(String),
      flows: {
        authorizationCode: {
          authorizationUrl: '/v1/auth/oidc/test/login',
          tokenUrl: '/v1/auth/token',
          scopes: {},
        },
      },
    })
    expect(document.paths['/v1/products'].get.security).toContainEqual({ SingleSignOn: [] })
  })

  it('when Swagger UI signs in, then its redirect page is an allowed target and its PKCE verifier redeems the code', async () => {
    const someone = person()
    const swaggerRedirect = `${PUBLIC_URL}/docs/static/oauth2-redirect.html`
    const verifier = 'swagger-ui-verifier-0123456789-0123456789-0123456789'
    const query = new URLSearchParams({
      response_type: 'code',
      client_id: 'swagger-ui',
      redirect_uri: swaggerRedirect,
      state: 'swagger-state',
      code_challenge: codeChallengeOf(verifier),
      code_challenge_method: 'S256',
    })

    const callback = await createBrowser(t, PUBLIC_URL).signIn(
      `${PUBLIC_URL}/v1/auth/oidc/test/login?${query}`,
      someone.login,
    )
    const tokens = await exchange(t, {
      code: codeOf(callback.location),
      redirect_uri: swaggerRedirect,
      code_verifier: verifier,
      client_id: 'swagger-ui',
    })

    expect(new URL(callback.location as string).searchParams.get('state')).toBe('swagger-state')
    expect(tokens.statusCode).toBe(200)
    expect((await t.app.inject({ url: '/docs/static/oauth2-redirect.html' })).statusCode).toBe(200)
  })
})
