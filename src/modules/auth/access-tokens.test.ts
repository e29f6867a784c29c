import { createHmac, randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Unauthenticated } from '../../shared/errors.js'
import { createAccessTokens, keyIdOf } from './access-tokens.js'

const SECRET = 'a'.repeat(40)
const PREVIOUS = 'b'.repeat(40)
const TOLERANCE_S = 30
const tokens = createAccessTokens({
  secret: SECRET,
  previousSecrets: [PREVIOUS],
  issuer: 'orderflow',
  audience: 'orderflow-api',
  ttlSeconds: 600,
  clockToleranceSeconds: TOLERANCE_S,
})
const now = () => Math.floor(Date.now() / 1000)

function sign(
  options: {
    header?: Record<string, unknown>
    claims?: Record<string, unknown>
    secret?: string
  } = {},
) {
  const claims = {
    sub: 'user-1',
    role: 'user',
    ver: 3,
    token_use: 'access',
    iss: 'orderflow',
    aud: 'orderflow-api',
    iat: now(),
    exp: now() + 600,
    jti: randomUUID(),
    ...options.claims,
  }
  const secret = options.secret ?? SECRET
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: keyIdOf(secret), ...options.header })
    .sign(new TextEncoder().encode(secret))
}

async function refusal(token: Promise<string> | string) {
  return tokens.verify(await token).then(
    () => 'accepted',
    (error: unknown) => (error instanceof Unauthenticated ? error.message : String(error)),
  )
}

describe('access-token verification', () => {
  it('when a token is issued, then it verifies to its subject, role and auth version', async () => {
    const token = await tokens.issue({ id: 'user-9', role: 'viewer', authVersion: 7 })
    expect(await tokens.verify(token)).toEqual({ sub: 'user-9', role: 'viewer', ver: 7 })
  })

  it('when a token expired within the clock tolerance, then it is accepted; beyond it, refused as expired', async () => {
    expect(await refusal(sign({ claims: { exp: now() - TOLERANCE_S + 5 } }))).toBe('accepted')
    expect(await refusal(sign({ claims: { exp: now() - TOLERANCE_S - 5 } }))).toBe(
      'The access token has expired.',
    )
  })

  describe('a token verified before', () => {
    afterEach(() => vi.useRealTimers())

    it('when its exp passes beyond the clock tolerance, then it is refused as expired', async () => {
      const token = await sign({ claims: { exp: now() + 60 } })
      expect(await refusal(token)).toBe('accepted')
      vi.useFakeTimers({ now: (now() + 60 + TOLERANCE_S - 1) * 1000, toFake: ['Date'] })
      expect(await refusal(token)).toBe('accepted')
      vi.setSystemTime((now() + 2) * 1000)
      expect(await refusal(token)).toBe('The access token has expired.')
    })

    it('when another token differs from it in the signature alone, then that one is refused', async () => {
      const token = await sign()
      expect(await refusal(token)).toBe('accepted')
      const [header, payload] = token.split('.')
      const forged = `${header}.${payload}.${createHmac('sha256', 'c'.repeat(40)).update(`${header}.${payload}`).digest('base64url')}`
      expect(await refusal(forged)).toBe('The access token is not valid.')
    })

    it('when it is verified again, then the claims are the same and cannot be changed', async () => {
      const token = await tokens.issue({ id: 'user-8', role: 'user', authVersion: 2 })
      const first = await tokens.verify(token)
      const again = await tokens.verify(token)
      expect(again).toEqual({ sub: 'user-8', role: 'user', ver: 2 })
      expect(() => Object.assign(again, { role: 'admin' })).toThrow(TypeError)
      expect(first.role).toBe('user')
    })
  })

  it('when nbf or iat lies in the future beyond the clock tolerance, then it is refused', async () => {
    expect(await refusal(sign({ claims: { nbf: now() + TOLERANCE_S - 5 } }))).toBe('accepted')
    expect(await refusal(sign({ claims: { nbf: now() + TOLERANCE_S + 5 } }))).toBe(
      'The access token is not valid.',
    )
    expect(await refusal(sign({ claims: { iat: now() + TOLERANCE_S + 5 } }))).toBe(
      'The access token is not valid.',
    )
  })

  it('when an audience list names this API, then it is accepted; a list without it is refused', async () => {
    expect(await refusal(sign({ claims: { aud: ['other', 'orderflow-api'] } }))).toBe('accepted')
    expect(await refusal(sign({ claims: { aud: ['other'] } }))).toBe(
      'The access token is not valid.',
    )
  })

  it.each([
    ['a required claim is missing (jti)', { claims: { jti: undefined } }],
    ['iat is not a number', { claims: { iat: 'yesterday' } }],
    ['sub is not a string', { claims: { sub: 42 } }],
    ['ver is not a number', { claims: { ver: '3' } }],
    ['its kid names no configured key', { header: { kid: 'unknown-key-id' } }],
    ['its kid is not a string', { header: { kid: 42 } }],
    ['its typ is another media type', { header: { typ: 'JWT' } }],
  ])('when %s, then it is refused', async (_name, options) => {
    expect(await refusal(sign(options))).toBe('The access token is not valid.')
  })

  it('when it names a critical header this verifier does not know, then it is refused', async () => {
    // jose refuses to sign such a header, so this one is put together by hand.
    const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const [, payload] = (await sign()).split('.')
    const header = part({
      alg: 'HS256',
      typ: 'at+jwt',
      kid: keyIdOf(SECRET),
      crit: ['x-ext'],
      'x-ext': 1,
    })
    const signature = createHmac('sha256', SECRET)
      .update(`${header}.${payload}`)
      .digest('base64url')
    expect(await refusal(`${header}.${payload}.${signature}`)).toBe(
      'The access token is not valid.',
    )
  })

  it('when typ is written as the full media type, then it is accepted as jose accepted it', async () => {
    expect(await refusal(sign({ header: { typ: 'application/at+jwt' } }))).toBe('accepted')
  })

  it('when a previous secret signed the token under its own kid, then it verifies; under the current kid, not', async () => {
    expect(await refusal(sign({ secret: PREVIOUS }))).toBe('accepted')
    expect(await refusal(sign({ secret: PREVIOUS, header: { kid: keyIdOf(SECRET) } }))).toBe(
      'The access token is not valid.',
    )
  })

  it('when the header is not JSON, then it is refused, not thrown as a server error', async () => {
    const [, payload, signature] = (await sign()).split('.')
    expect(await refusal(`bm90IGpzb24.${payload}.${signature}`)).toBe(
      'The access token is not valid.',
    )
  })
})
