import { SignJWT } from 'jose'
import { createTestUser, type TestApp, type TestUser } from '../helpers.js'

/** The roles every operation is tried as. */
export const ROLES = [
  'admin',
  'user',
  'viewer',
  'api key',
  'no credentials',
  'bad credentials',
] as const
export type FuzzRole = (typeof ROLES)[number]

export interface Callers {
  /** Headers for a role; `bad credentials` rotates through every kind by `attempt`. */
  headersOf(role: FuzzRole, attempt: number): Record<string, string>
  /** Each kind of credential the service must refuse with 401, by name. */
  badCredentials: [string, Record<string, string>][]
  users: Record<'admin' | 'user' | 'viewer', TestUser>
  /** A user who owns the `api key` role's key, and the spare users' logins for bodies. */
  keyOwner: TestUser
  spare: TestUser
}

const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** Real logins for admin, user and viewer, an API key, and a catalogue of bad credentials. */
export async function createCallers(
  t: TestApp,
  jwtSecret: string,
  issuer: string,
  audience: string,
): Promise<Callers> {
  const users = {
    admin: await createTestUser(t, 'admin'),
    user: await createTestUser(t, 'user'),
    viewer: await createTestUser(t, 'viewer'),
  }
  const keyOwner = await createTestUser(t, 'user')
  const spare = await createTestUser(t, 'user')
  const apiKey = await createApiKey(t, keyOwner)
  const revokedKey = await createApiKey(t, keyOwner)
  await t.app.inject({
    method: 'DELETE',
    url: `/v1/api-keys/${revokedKey.id}`,
    headers: keyOwner.headers,
  })
  const deleted = await createTestUser(t, 'user')
  await t.app.inject({
    method: 'DELETE',
    url: `/v1/users/${deleted.id}`,
    headers: users.admin.headers,
  })

  const claims = { role: 'admin', ver: 0, token_use: 'access' }
  const signed = (secret: string, expiresAt: number) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt' })
      .setSubject(users.admin.id)
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt(expiresAt - 900)
      .setExpirationTime(expiresAt)
      .setJti(crypto.randomUUID())
      .sign(new TextEncoder().encode(secret))
  const now = Math.floor(Date.now() / 1000)
  const unsigned = `${base64url({ alg: 'none', typ: 'at+jwt' })}.${base64url({ ...claims, sub: users.admin.id, iss: issuer, aud: audience, iat: now, exp: now + 900, jti: crypto.randomUUID() })}.`
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
  const badCredentials: [string, Record<string, string>][] = [
    ['no credentials', {}],
    ['garbage bearer token', bearer('not-a-token')],
    ['empty bearer', { authorization: 'Bearer ' }],
    ['JWT signed with another secret', bearer(await signed(`${jwtSecret}-other`, now + 900))],
    ['expired JWT', bearer(await signed(jwtSecret, now - 3600))],
    ['unsigned JWT (alg none)', bearer(unsigned)],
    ['refresh token as bearer', bearer(users.admin.refreshToken)],
    ['token of a deleted user', deleted.headers],
    ['unknown API key', { 'x-api-key': `${apiKey.prefix}_${'A'.repeat(43)}` }],
    ['revoked API key', { 'x-api-key': revokedKey.key }],
    ['Basic scheme', { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` }],
  ]
  const refused = badCredentials.slice(1)
  return {
    users,
    keyOwner,
    spare,
    badCredentials,
    headersOf(role, attempt) {
      switch (role) {
        case 'admin':
        case 'user':
        case 'viewer':
          return users[role].headers
        case 'api key':
          return { 'x-api-key': apiKey.key }
        case 'no credentials':
          return {}
        case 'bad credentials':
          return (refused[attempt % refused.length] as [string, Record<string, string>])[1]
      }
    },
  }
}

async function createApiKey(t: TestApp, owner: TestUser) {
  const response = await t.app.inject({
    method: 'POST',
    url: '/v1/api-keys',
    headers: owner.headers,
    payload: { name: 'fuzz' },
  })
  if (response.statusCode !== 201)
    throw new Error(`API key: ${response.statusCode} ${response.body}`)
  return response.json() as { id: string; key: string; prefix: string }
}
