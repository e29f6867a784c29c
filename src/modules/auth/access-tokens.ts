import { createHash, randomUUID, type webcrypto } from 'node:crypto'
import { createVerifier, TokenError } from 'fast-jwt'
import { SignJWT } from 'jose'
import { LRUCache } from 'lru-cache'
import type { Role } from '../../shared/caller.js'
import { Unauthenticated } from '../../shared/errors.js'

export interface AccessTokenSettings {
  /** Signs every new token, and verifies. */
  secret: string
  /** Earlier signing secrets: they verify the tokens they signed until those expire. */
  previousSecrets?: readonly string[]
  issuer: string
  audience: string
  ttlSeconds: number
  clockToleranceSeconds: number
  /** Verified tokens remembered until they expire; the least recently used go first. */
  verifiedCacheMax?: number
}

export interface AccessTokenSubject {
  id: string
  role: Role
  authVersion: number
}

export interface AccessTokenClaims {
  sub: string
  role: Role
  /** The user's auth_version at issue time; a later password change or deactivation moves it. */
  ver: number
}

/** Enough for every token in use on a busy instance; each entry is the token and its claims. */
const VERIFIED_CACHE_MAX = 10_000

// RFC 9068 media type: a refresh token or an ID token can never pass for an access token.
const ACCESS_TOKEN_TYPE = 'at+jwt'
const ALGORITHM = 'HS256'

/**
 * The `kid` naming the key a token was signed with: a short hash of the secret, so the
 * verifier finds the key without trying each, and the header reveals nothing usable. The
 * label keeps it from matching a plain SHA-256 of the secret kept anywhere else.
 */
export function keyIdOf(secret: string): string {
  return createHash('sha256')
    .update('orderflow access-token kid\0')
    .update(secret)
    .digest('base64url')
    .slice(0, 16)
}

// Imported once: handing jose the raw bytes would import the key again on every signature.
function importKey(secret: string): Promise<webcrypto.CryptoKey> {
  return crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign', 'verify'],
  )
}

/**
 * The `kid` of a token's header, read only to pick the verifier, which then checks the
 * whole token; an unreadable header picks the current key's and fails there.
 */
function keyIdIn(token: string): unknown {
  try {
    const header = Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString()
    return (JSON.parse(header) as { kid?: unknown } | null)?.kid
  } catch {
    return undefined
  }
}

/**
 * Short-lived signed access tokens (JWT, HS256) with an explicit verification policy.
 * Keys rotate without logging anyone out: the current secret signs, and every token names
 * its key in `kid`, so tokens signed with a previous secret verify until they expire.
 *
 * jose signs (a few per login); fast-jwt verifies (one per bearer request). jose verifies
 * through WebCrypto, whose HMAC runs as an asynchronous job and cost about an eighth of a
 * product read's CPU; fast-jwt computes the same HMAC with node:crypto in place and
 * compares it in constant time, with the same policy: HS256 only, typ, iss, aud, exp and
 * nbf with the clock tolerance, required claims, and unknown `crit` headers refused.
 */
export function createAccessTokens(settings: AccessTokenSettings) {
  const signingKid = keyIdOf(settings.secret)
  const signingKey = importKey(settings.secret)
  // One verifier per key, each holding its key prepared once; the same policy for all.
  const verifierFor = (secret: string) =>
    createVerifier({
      key: secret,
      algorithms: [ALGORITHM],
      allowedIss: settings.issuer,
      allowedAud: settings.audience,
      checkTyp: ACCESS_TOKEN_TYPE,
      clockTolerance: settings.clockToleranceSeconds * 1000,
      requiredClaims: ['sub', 'iat', 'exp', 'jti'],
    })
  const currentVerifier = verifierFor(settings.secret)
  const verifiers = new Map([[signingKid, currentVerifier]])
  for (const secret of settings.previousSecrets ?? []) {
    const kid = keyIdOf(secret)
    if (!verifiers.has(kid)) verifiers.set(kid, verifierFor(secret))
  }
  // Tokens issued before tokens carried a kid can only have been signed with the current
  // secret; they are accepted with it alone and are gone within one access-token lifetime.
  const verifySignedClaims = (token: string): Record<string, unknown> => {
    const kid = keyIdIn(token)
    const verifier = kid === undefined ? currentVerifier : verifiers.get(kid as string)
    if (!verifier) throw new TokenError(TokenError.codes.invalidKey, 'unknown signing key')
    return verifier(token)
  }

  // A bearer client sends the same token until it expires, and checking its signature and
  // claims again each time (about 9 µs) was the largest part of authentication's CPU on a
  // read. A token that passed every check passes them again until `exp`, the only one that
  // depends on the time (a future `iat` or `nbf` is refused, never cached), so a hit checks
  // `exp` alone. The key is the whole token: only the very same bytes find the entry.
  // Revocation is not decided here: the service checks the user's auth state on every
  // request, whichever way the claims came.
  const verified = new LRUCache<string, { claims: AccessTokenClaims; validUntilMs: number }>({
    max: settings.verifiedCacheMax ?? VERIFIED_CACHE_MAX,
  })
  const toleranceMs = settings.clockToleranceSeconds * 1000

  return {
    ttlSeconds: settings.ttlSeconds,

    async issue(subject: AccessTokenSubject): Promise<string> {
      return new SignJWT({ role: subject.role, ver: subject.authVersion, token_use: 'access' })
        .setProtectedHeader({ alg: ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid: signingKid })
        .setSubject(subject.id)
        .setIssuer(settings.issuer)
        .setAudience(settings.audience)
        .setIssuedAt()
        .setExpirationTime(`${settings.ttlSeconds}s`)
        .setJti(randomUUID())
        .sign(await signingKey)
    },

    async verify(token: string): Promise<AccessTokenClaims> {
      const known = verified.get(token)
      if (known && Date.now() <= known.validUntilMs) return known.claims
      let payload: Record<string, unknown>
      try {
        payload = verifySignedClaims(token)
      } catch (error) {
        if (!(error instanceof TokenError)) throw error
        throw new Unauthenticated(
          error.code === TokenError.codes.expired
            ? 'The access token has expired.'
            : 'The access token is not valid.',
        )
      }
      const issuedInFuture =
        typeof payload.iat !== 'number' ||
        payload.iat > Date.now() / 1000 + settings.clockToleranceSeconds
      if (
        payload.token_use !== 'access' ||
        typeof payload.ver !== 'number' ||
        typeof payload.sub !== 'string' ||
        issuedInFuture
      ) {
        throw new Unauthenticated('The access token is not valid.')
      }
      const claims = Object.freeze({
        sub: payload.sub,
        role: payload.role as Role,
        ver: payload.ver,
      })
      // fast-jwt required `exp` and checked it the same way: valid while now <= exp + tolerance.
      verified.set(token, { claims, validUntilMs: (payload.exp as number) * 1000 + toleranceMs })
      return claims
    },
  }
}

export type AccessTokens = ReturnType<typeof createAccessTokens>
