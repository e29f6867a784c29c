import { randomUUID } from 'node:crypto'
import { decodeProtectedHeader, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, createTestUser, type TestApp, type TestUser } from '../../../test/helpers.js'
import { createAccessTokens, keyIdOf } from './access-tokens.js'

const currentSecret = `current-${'c'.repeat(40)}`
const previousSecret = `previous-${'p'.repeat(40)}`
const retiredSecret = `retired-${'r'.repeat(40)}`

let t: TestApp
let user: TestUser

beforeAll(async () => {
  t = await buildTestApp({
    JWT_SECRET: currentSecret,
    JWT_PREVIOUS_SECRETS: ` ${previousSecret} ,`,
  })
  user = await createTestUser(t, 'user')
})
afterAll(() => t.close())

/** Tokens as an instance configured with `secret` would have issued them. */
function issuerWith(secret: string) {
  return createAccessTokens({
    secret,
    issuer: 'orderflow',
    audience: 'orderflow-api',
    ttlSeconds: 900,
    clockToleranceSeconds: 30,
  })
}

/** A token signed with `secret` whose header says whatever `header` says. */
function signedWith(secret: string, header: { kid?: string }) {
  return new SignJWT({ role: 'user', ver: 1, token_use: 'access' })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', ...header })
    .setSubject(user.id)
    .setIssuer('orderflow')
    .setAudience('orderflow-api')
    .setIssuedAt()
    .setExpirationTime('10m')
    .setJti(randomUUID())
    .sign(new TextEncoder().encode(secret))
}

function me(token: string) {
  return t.app.inject({ url: '/v1/users/me', headers: { authorization: `Bearer ${token}` } })
}

describe('signing key rotation', () => {
  it('when a token is issued, then its header names the current key by a kid that does not reveal the secret', () => {
    const header = decodeProtectedHeader(user.headers.authorization.slice('Bearer '.length))
    expect(header).toEqual({ alg: 'HS256', typ: 'at+jwt', kid: keyIdOf(currentSecret) })
    expect(header.kid).toMatch(/^[A-Za-z0-9_-]{16}$/)
    expect(currentSecret).not.toContain(header.kid as string)
    expect(keyIdOf(previousSecret)).not.toBe(header.kid)
  })

  it('when a token was signed with a secret listed in JWT_PREVIOUS_SECRETS, then it still authenticates', async () => {
    const token = await issuerWith(previousSecret).issue({
      id: user.id,
      role: 'user',
      authVersion: 1,
    })
    expect(decodeProtectedHeader(token).kid).toBe(keyIdOf(previousSecret))
    const response = await me(token)
    expect(response.statusCode).toBe(200)
    expect(response.json().id).toBe(user.id)
  })

  it('when a token was signed with a secret no longer listed, then it answers 401', async () => {
    const token = await issuerWith(retiredSecret).issue({
      id: user.id,
      role: 'user',
      authVersion: 1,
    })
    const response = await me(token)
    expect(response.statusCode).toBe(401)
    expect(response.json().detail).toBe('The access token is not valid.')
  })

  it('when a token names one key but was signed with another, then it answers 401', async () => {
    for (const token of [
      await signedWith(retiredSecret, { kid: keyIdOf(previousSecret) }),
      await signedWith(previousSecret, { kid: keyIdOf(currentSecret) }),
      await signedWith(currentSecret, { kid: 'no-such-key' }),
    ]) {
      expect((await me(token)).statusCode).toBe(401)
    }
  })

  it('when a token has no kid (issued before kids existed), then only the current secret verifies it', async () => {
    expect((await me(await signedWith(currentSecret, {}))).statusCode).toBe(200)
    expect((await me(await signedWith(previousSecret, {}))).statusCode).toBe(401)
  })
})
