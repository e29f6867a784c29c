import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair, importJWK, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BROWSER_CLIENT,
  startTestProvider,
  type TestProvider,
} from '../../../test/oidc-provider.js'
import { OidcIdTokenInvalid, OidcProviderUnavailable } from './errors.js'
import { createProviderClient, type ProviderClient } from './provider-client.js'
import type { OidcProvider } from './provider-config.js'

const NONCE = 'the-nonce-of-this-sign-in'
const COOLDOWN_MS = 1000

let provider: TestProvider

function settings(overrides: Partial<OidcProvider> = {}): OidcProvider {
  return {
    name: 'test',
    issuer: provider.issuer,
    client_id: BROWSER_CLIENT.id,
    clientSecret: BROWSER_CLIENT.secret,
    scopes: ['openid'],
    email_claim: 'email',
    name_claim: 'name',
    link_verified_email: false,
    algorithms: ['RS256'],
    login: true,
    ...overrides,
  }
}

function clientFor(overrides: Partial<OidcProvider> = {}): ProviderClient {
  return createProviderClient(settings(overrides), {
    jwksCooldownMs: COOLDOWN_MS,
    httpTimeoutMs: 2000,
    clockToleranceSeconds: 5,
  })
}

/** An ID token as the provider would sign it, with claims and header overridable. */
async function idToken(
  claims: JWTPayload = {},
  options: { kid?: string; key?: Parameters<SignJWT['sign']>[0]; alg?: string } = {},
) {
  const key = options.key ?? (await importJWK(provider.signingKey.privateJwk, 'RS256'))
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ nonce: NONCE, ...claims })
    .setProtectedHeader({
      alg: options.alg ?? 'RS256',
      kid: options.kid ?? provider.signingKey.kid,
    })
    .setIssuer((claims.iss as string | undefined) ?? provider.issuer)
    .setAudience((claims.aud as string | string[] | undefined) ?? BROWSER_CLIENT.id)
    .setSubject('subject-1')
    .setIssuedAt(now)
    .setExpirationTime((claims.exp as number | undefined) ?? now + 300)
    .sign(key)
}

async function refusal(
  promise: Promise<unknown>,
): Promise<InstanceType<typeof OidcIdTokenInvalid>> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(OidcIdTokenInvalid)
  return error as InstanceType<typeof OidcIdTokenInvalid>
}

beforeAll(async () => {
  provider = await startTestProvider({ redirectUri: 'http://orderflow.test/callback' })
})
afterAll(() => provider?.close())

describe('ID token validation against the provider’s published keys', () => {
  let client: ProviderClient
  beforeAll(() => {
    client = clientFor()
  })

  it('when the token is signed by the provider for this client and sign-in, then its claims come back', async () => {
    const claims = await client.validateIdToken(await idToken({ email: 'a@example.com' }), NONCE)

    expect(claims).toMatchObject({ sub: 'subject-1', email: 'a@example.com' })
  })

  it('when the nonce is another sign-in’s, then it is refused as nonce_mismatch', async () => {
    const error = await refusal(client.validateIdToken(await idToken({ nonce: 'other' }), NONCE))

    expect(error.reason).toBe('nonce_mismatch')
    expect(error.code).toBe('OIDC_ID_TOKEN_INVALID')
  })

  it('when the audience is another client, then it is refused', async () => {
    const error = await refusal(
      client.validateIdToken(await idToken({ aud: 'another-client' }), NONCE),
    )

    expect(error.reason).toBe('ERR_JWT_CLAIM_VALIDATION_FAILED')
    expect(error.message).toContain('aud')
  })

  it('when the issuer is another, then it is refused', async () => {
    const error = await refusal(
      client.validateIdToken(await idToken({ iss: 'https://evil.example' }), NONCE),
    )

    expect(error.message).toContain('iss')
  })

  it('when the token has expired, beyond the clock tolerance, then it is refused', async () => {
    const past = Math.floor(Date.now() / 1000) - 60
    const error = await refusal(client.validateIdToken(await idToken({ exp: past }), NONCE))

    expect(error.reason).toBe('ERR_JWT_EXPIRED')
  })

  it('when the token is unsigned (alg none), then it is refused', async () => {
    const unsigned = new UnsecuredJWT({ nonce: NONCE })
      .setIssuer(provider.issuer)
      .setAudience(BROWSER_CLIENT.id)
      .setSubject('subject-1')
      .setIssuedAt()
      .setExpirationTime('5m')
      .encode()

    const error = await refusal(client.validateIdToken(unsigned, NONCE))

    expect(error.reason).toBe('ERR_JOSE_ALG_NOT_ALLOWED')
  })

  it('when the token is HMAC-signed with the client secret, then it is refused: only the allowed algorithms count', async () => {
    const token = await idToken(
      {},
      { alg: 'HS256', key: new TextEncoder().encode(BROWSER_CLIENT.secret) },
    )

    const error = await refusal(client.validateIdToken(token, NONCE))

    expect(error.reason).toBe('ERR_JOSE_ALG_NOT_ALLOWED')
  })

  it('when the token is signed by another key under the provider’s kid, then the signature fails', async () => {
    const { privateKey } = await generateKeyPair('RS256')

    const error = await refusal(
      client.validateIdToken(await idToken({}, { key: privateKey }), NONCE),
    )

    expect(error.reason).toBe('ERR_JWS_SIGNATURE_VERIFICATION_FAILED')
  })

  it('when the token has several audiences and azp names another party, then it is refused', async () => {
    const token = await idToken({ aud: [BROWSER_CLIENT.id, 'other'], azp: 'other' })

    const error = await refusal(client.validateIdToken(token, NONCE))

    expect(error.reason).toBe('azp_mismatch')
  })

  it('when the token has several audiences and azp names this client, then it is accepted', async () => {
    const token = await idToken({ aud: [BROWSER_CLIENT.id, 'other'], azp: BROWSER_CLIENT.id })

    await expect(client.validateIdToken(token, NONCE)).resolves.toHaveProperty('sub')
  })
})

describe('access tokens for services', () => {
  it('when an ID token carries the service audience, then it is not taken for an access token', async () => {
    const client = clientFor({ service_tokens: { audience: BROWSER_CLIENT.id } })
    const accessToken = await idToken({ nonce: undefined })

    await expect(client.validateAccessToken(accessToken)).resolves.toHaveProperty('sub')
    const error = await refusal(client.validateAccessToken(await idToken()))
    const keycloakStyle = await refusal(
      client.validateAccessToken(await idToken({ nonce: undefined, typ: 'ID' })),
    )

    expect(error.reason).toBe('id_token')
    expect(keycloakStyle.reason).toBe('id_token')
  })
})

describe('the provider’s key set', () => {
  it('when the provider rotates its key, then a token with the unknown kid triggers one key-set fetch and succeeds, and more unknown kids within the cooldown fetch nothing', async () => {
    const client = clientFor()
    await client.validateIdToken(await idToken(), NONCE)
    const fetchedBefore = provider.jwksRequests
    // Made beforehand: generating an RSA key can outlast the cooldown on a busy machine.
    const { privateKey } = await generateKeyPair('RS256')

    await provider.rotateKeys('key-2')
    await sleep(COOLDOWN_MS + 50)
    const rotated = await client.validateIdToken(await idToken({}, { kid: 'key-2' }), NONCE)
    const afterRotation = provider.jwksRequests
    await client.validateIdToken(await idToken({}, { kid: 'key-2' }), NONCE)
    const forged = await refusal(
      client.validateIdToken(await idToken({}, { kid: 'key-3', key: privateKey }), NONCE),
    )

    expect(rotated.sub).toBe('subject-1')
    expect(afterRotation).toBe(fetchedBefore + 1)
    expect(provider.jwksRequests).toBe(afterRotation)
    expect(forged.reason).toBe('ERR_JWKS_NO_MATCHING_KEY')
  })

  it('when the discovery document names another issuer, then the provider counts as unavailable', async () => {
    const client = clientFor({ issuer: `${provider.issuer}/` })

    await expect(client.metadata()).rejects.toBeInstanceOf(OidcProviderUnavailable)
  })

  it('when the provider cannot be reached, then 502 OIDC_PROVIDER_UNAVAILABLE, and a later call asks again', async () => {
    const client = clientFor({ issuer: 'http://127.0.0.1:9' })

    const first = await client.metadata().catch((error: unknown) => error)
    const second = await client.metadata().catch((error: unknown) => error)

    expect(first).toBeInstanceOf(OidcProviderUnavailable)
    expect((first as InstanceType<typeof OidcProviderUnavailable>).status).toBe(502)
    expect(second).not.toBe(first)
  })
})
