import { randomUUID } from 'node:crypto'
import { errors, jwtVerify, SignJWT } from 'jose'
import type { Role } from '../../shared/caller.js'
import { Unauthenticated } from '../../shared/errors.js'

export interface AccessTokenSettings {
  secret: string
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

/** Short-lived signed access tokens (JWT, HS256) with an explicit verification policy. */
export function createAccessTokens(settings: AccessTokenSettings) {
  // Imported once: handing jose the raw bytes would import the key again on every verify.
  const keyPromise = crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(settings.secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign', 'verify'],
  )

  return {
    ttlSeconds: settings.ttlSeconds,

    async issue(subject: AccessTokenSubject): Promise<string> {
      return new SignJWT({ role: subject.role, ver: subject.authVersion, token_use: 'access' })
        .setProtectedHeader({ alg: ALGORITHM, typ: ACCESS_TOKEN_TYPE })
        .setSubject(subject.id)
        .setIssuer(settings.issuer)
        .setAudience(settings.audience)
        .setIssuedAt()
        .setExpirationTime(`${settings.ttlSeconds}s`)
        .setJti(randomUUID())
        .sign(await keyPromise)
    },

    async verify(token: string): Promise<AccessTokenClaims> {
      try {
        const { payload } = await jwtVerify(token, await keyPromise, {
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
