import { createHash, randomUUID, type webcrypto } from 'node:crypto'
import { errors, type JWTVerifyGetKey, jwtVerify, SignJWT } from 'jose'
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

// Imported once: handing jose the raw bytes would import the key again on every verify.
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
 * Short-lived signed access tokens (JWT, HS256) with an explicit verification policy.
 * Keys rotate without logging anyone out: the current secret signs, and every token names
 * its key in `kid`, so tokens signed with a previous secret verify until they expire.
 */
export function createAccessTokens(settings: AccessTokenSettings) {
  const signingKid = keyIdOf(settings.secret)
  const signingKey = importKey(settings.secret)
  const verifyingKeys = new Map([[signingKid, signingKey]])
  for (const secret of settings.previousSecrets ?? []) {
    const kid = keyIdOf(secret)
    if (!verifyingKeys.has(kid)) verifyingKeys.set(kid, importKey(secret))
  }
  // Tokens issued before tokens carried a kid can only have been signed with the current
  // secret; they are accepted with it alone and are gone within one access-token lifetime.
  const keyFor: JWTVerifyGetKey = (header) => {
    const key = header.kid === undefined ? signingKey : verifyingKeys.get(header.kid)
    if (!key) throw new errors.JWSSignatureVerificationFailed('unknown signing key')
    return key
  }

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
      try {
        const { payload } = await jwtVerify(token, keyFor, {
          algorithms: [ALGORITHM],
          issuer: settings.issuer,
          audience: settings.audience,
          typ: ACCESS_TOKEN_TYPE,
          clockTolerance: settings.clockToleranceSeconds,
          requiredClaims: ['sub', 'iat', 'exp', 'jti'],
        })
        const issuedInFuture =
          (payload.iat ?? 0) > Date.now() / 1000 + settings.clockToleranceSeconds
        if (payload.token_use !== 'access' || typeof payload.ver !== 'number' || issuedInFuture) {
          throw new errors.JWTInvalid('not an access token')
        }
        return { sub: payload.sub as string, role: payload.role as Role, ver: payload.ver }
      } catch (error) {
        if (error instanceof errors.JOSEError) {
          throw new Unauthenticated(
            error instanceof errors.JWTExpired
              ? 'The access token has expired.'
              : 'The access token is not valid.',
          )
        }
        throw error
      }
    },
  }
}

export type AccessTokens = ReturnType<typeof createAccessTokens>
