import { and, eq, isNull } from 'drizzle-orm'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  login,
  type TestApp,
  type TestUser,
} from '../../../test/helpers.js'
import { DEVELOPMENT_JWT_SECRET } from '../../config.js'
import { refreshTokens, users } from '../../db/schema/index.js'
import { hashSecret } from '../../shared/secrets.js'
import { keyIdOf } from './access-tokens.js'

let t: TestApp

beforeAll(async () => {
  t = await buildTestApp()
})
afterAll(() => t.close())

function tokenRequest(fields: Record<string, string>) {
  return t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(fields).toString(),
  })
}

function refresh(refreshToken: string) {
  return tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken })
}

async function familyOf(refreshToken: string): Promise<string> {
  const [row] = await t.database.db
    .select({ familyId: refreshTokens.familyId })
    .from(refreshTokens)
    .where(eq(refreshTokens.tokenHash, hashSecret(refreshToken)))
  if (!row) throw new Error('unknown refresh token')
  return row.familyId
}

async function liveTokens(familyId: string): Promise<number> {
  const rows = await t.database.db
    .select({ id: refreshTokens.id })
    .from(refreshTokens)
    .where(
      and(
        eq(refreshTokens.familyId, familyId),
        isNull(refreshTokens.revokedAt),
        isNull(refreshTokens.usedAt),
      ),
    )
  return rows.length
}

describe('password grant', () => {
  let user: TestUser

  beforeAll(async () => {
    user = await createTestUser(t, 'user')
  })

  it('answers an access token, a refresh token and no-store caching', async () => {
    const response = await tokenRequest({
      grant_type: 'password',
      username: user.email.toUpperCase(),
      password: user.password,
    })

    expect(response.statusCode).toBe(200)
    expect(response.headers['cache-control']).toBe('no-store')
    const body = response.json()
    expect(body).toMatchObject({ token_type: 'bearer', expires_in: 900 })
    expect(body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/)

    expect(decodeProtectedHeader(body.access_token)).toEqual({
      alg: 'HS256',
      typ: 'at+jwt',
      kid: keyIdOf(DEVELOPMENT_JWT_SECRET),
    })
    const claims = decodeJwt(body.access_token)
    expect(claims).toMatchObject({
      sub: user.id,
      role: 'user',
      iss: 'orderflow',
      aud: 'orderflow-api',
      token_use: 'access',
    })
    expect(claims.exp).toBe((claims.iat as number) + 900)
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('records the login time', async () => {
    const me = await injectAs(t, user)({ url: '/v1/users/me' })
    expect(Date.parse(me.json().last_login_at)).toBeGreaterThan(Date.now() - 60_000)
  })

  it('answers a wrong password and an unknown email identically with invalid_grant', async () => {
    const wrongPassword = await tokenRequest({
      grant_type: 'password',
      username: user.email,
      password: 'not the password at all',
    })
    const unknownEmail = await tokenRequest({
      grant_type: 'password',
      username: 'nobody-here@example.com',
      password: 'not the password at all',
    })

    for (const response of [wrongPassword, unknownEmail]) {
      expect(response.statusCode).toBe(400)
      expect(response.headers['content-type']).toMatch(/^application\/json/)
    }
    expect(wrongPassword.json()).toEqual(unknownEmail.json())
    expect(wrongPassword.json().error).toBe('invalid_grant')
  })

  it('refuses a deactivated user with the same invalid_grant answer', async () => {
    const disabled = await createTestUser(t, 'user')
    await t.database.db.update(users).set({ isActive: false }).where(eq(users.id, disabled.id))
    const response = await tokenRequest({
      grant_type: 'password',
      username: disabled.email,
      password: disabled.password,
    })
    expect(response.statusCode).toBe(400)
    expect(response.json()).toEqual({
      error: 'invalid_grant',
      error_description: 'The email or password is wrong, or the account is disabled.',
    })
  })

  it.each([
    [{}, 'invalid_request'],
    [{ grant_type: 'password', username: 'a@example.com' }, 'invalid_request'],
    [{ grant_type: 'refresh_token' }, 'invalid_request'],
    [{ grant_type: 'client_credentials' }, 'unsupported_grant_type'],
    [{ grant_type: 'authorization_code' }, 'invalid_request'],
    [{ grant_type: 'authorization_code', code: 'not a code anyone was given' }, 'invalid_grant'],
  ])('answers the request %j with the RFC 6749 error %s', async (fields, error) => {
    const response = await tokenRequest(fields as Record<string, string>)
    expect(response.statusCode).toBe(400)
    expect(response.json().error).toBe(error)
    expect(response.json().error_description).toEqual(expect.any(String))
  })

  it('answers a repeated grant_type parameter with invalid_request', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'grant_type=password&grant_type=refresh_token',
    })
    expect(response.statusCode).toBe(400)
    expect(response.json().error).toBe('invalid_request')
  })

  it('also accepts the same fields as JSON, for scripts', async () => {
    const json = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      payload: { grant_type: 'password', username: user.email, password: user.password },
    })
    expect(json.statusCode).toBe(200)
    expect(json.json().token_type).toBe('bearer')
  })
})

describe('refresh grant', () => {
  it('rotates the refresh token on every use', async () => {
    const user = await createTestUser(t, 'viewer')
    const first = await refresh(user.refreshToken)
    expect(first.statusCode).toBe(200)
    const rotated = first.json().refresh_token
    expect(rotated).not.toBe(user.refreshToken)
    expect(decodeJwt(first.json().access_token).sub).toBe(user.id)

    const second = await refresh(rotated)
    expect(second.statusCode).toBe(200)
    expect(await familyOf(second.json().refresh_token)).toBe(await familyOf(user.refreshToken))
  })

  it('revokes the whole family when a rotated token is presented again', async () => {
    const user = await createTestUser(t, 'user')
    const next = (await refresh(user.refreshToken)).json().refresh_token

    const replay = await refresh(user.refreshToken)
    expect(replay.statusCode).toBe(400)
    expect(replay.json().error).toBe('invalid_grant')
    // The legitimate holder's newer token dies with the family: both must log in again.
    expect((await refresh(next)).json().error).toBe('invalid_grant')
    expect(await liveTokens(await familyOf(next))).toBe(0)
  })

  it('lets exactly one of many racing refreshes with the same token win, and leaves no live token', async () => {
    const user = await createTestUser(t, 'user')
    const family = await familyOf(user.refreshToken)
    const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(user.refreshToken)))

    const statuses = answers.map((a) => a.statusCode).sort()
    expect(statuses.filter((s) => s === 200)).toHaveLength(1)
    expect(statuses.filter((s) => s === 400)).toHaveLength(9)
    // The losers replayed a used token, so the family is revoked: no second session survives.
    expect(await liveTokens(family)).toBe(0)
  })

  it('refuses an expired refresh token', async () => {
    const user = await createTestUser(t, 'user')
    await t.database.db
      .update(refreshTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(refreshTokens.tokenHash, hashSecret(user.refreshToken)))
    expect((await refresh(user.refreshToken)).json().error).toBe('invalid_grant')
  })

  it('refuses an unknown refresh token', async () => {
    expect((await refresh('made-up-token')).json().error).toBe('invalid_grant')
  })

  it('cannot use an access token as a refresh token, nor a refresh token as a bearer token', async () => {
    const user = await createTestUser(t, 'user')
    const accessToken = user.headers.authorization.slice('Bearer '.length)
    expect((await refresh(accessToken)).json().error).toBe('invalid_grant')
    const asBearer = await t.app.inject({
      url: '/v1/users/me',
      headers: { authorization: `Bearer ${user.refreshToken}` },
    })
    expect(asBearer.statusCode).toBe(401)
  })
})

describe('POST /v1/auth/revoke', () => {
  it('logs out: the refresh token and its family stop working', async () => {
    const user = await createTestUser(t, 'viewer')
    const response = await injectAs(
      t,
      user,
    )({
      method: 'POST',
      url: '/v1/auth/revoke',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${user.refreshToken}`,
    })
    expect(response.statusCode).toBe(200)
    expect((await refresh(user.refreshToken)).json().error).toBe('invalid_grant')
  })

  it('answers 200 for an unknown token, and leaves another user’s token alone', async () => {
    const [owner, other] = [await createTestUser(t, 'user'), await createTestUser(t, 'user')]
    const unknown = await injectAs(
      t,
      other,
    )({
      method: 'POST',
      url: '/v1/auth/revoke',
      payload: { token: 'no-such-token' },
    })
    expect(unknown.statusCode).toBe(200)
    const foreign = await injectAs(
      t,
      other,
    )({
      method: 'POST',
      url: '/v1/auth/revoke',
      payload: { token: owner.refreshToken },
    })
    expect(foreign.statusCode).toBe(200)
    expect((await refresh(owner.refreshToken)).statusCode).toBe(200)
  })
})

describe('secrets never leave in logs', () => {
  it('writes no password, hash, token or API key to any log line', async () => {
    const user = await createTestUser(t, 'user')
    const tokens = await login(t, user.email, user.password)
    const rotated = (await refresh(tokens.refresh_token)).json()
    const created = await injectAs(
      t,
      user,
    )({
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: 'log probe' },
    })
    const key = created.json().key as string
    await t.app.inject({ url: '/v1/users/me', headers: { 'x-api-key': key } })
    await tokenRequest({
      grant_type: 'password',
      username: user.email,
      password: 'wrong password here',
    })
    const [row] = await t.database.db
      .select({ hash: users.passwordHash })
      .from(users)
      .where(eq(users.id, user.id))

    const written = JSON.stringify(t.logs)
    const secrets = [
      user.password,
      row?.hash,
      tokens.access_token,
      tokens.refresh_token,
      rotated.access_token,
      rotated.refresh_token,
      key,
      'wrong password here',
    ]
    for (const secret of secrets) {
      expect(secret).toBeTruthy()
      expect(written).not.toContain(secret)
    }
  })
})
