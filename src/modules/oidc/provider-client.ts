import { createHash } from 'node:crypto'
import {
  createRemoteJWKSet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from 'jose'
import { OidcIdTokenInvalid, OidcProviderUnavailable } from './errors.js'
import type { OidcProvider } from './provider-config.js'

/** What the service reads of a provider's discovery document. */
export interface ProviderMetadata {
  issuer: string
  authorization_endpoint: string
  token_endpoint: string
  jwks_uri: string
  end_session_endpoint?: string
  token_endpoint_auth_methods_supported?: string[]
}

export interface ProviderClientOptions {
  /** Least time between two key-set fetches caused by an unknown `kid`. */
  jwksCooldownMs: number
  /** Every request to the provider gives up after this. */
  httpTimeoutMs: number
  clockToleranceSeconds: number
}

export interface AuthorizationRequest {
  redirectUri: string
  state: string
  nonce: string
  codeVerifier: string
}

/** The S256 PKCE challenge of a verifier (RFC 7636 §4.2). */
export function codeChallengeOf(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url')
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}

/**
 * The relying-party side of one OpenID Connect provider: discovery, the authorization URL,
 * the code exchange, and validation of its ID tokens and access tokens.
 *
 * jose does the cryptography and the key set: one remote key set per provider, fetched on
 * first use, kept (jose's cacheMaxAge), fetched again when a token names a `kid` it lacks
 * but at most once per cooldown, so a stream of forged kids cannot make the service hammer
 * the provider. ID tokens and service access tokens share it. A full client library
 * (openid-client) would keep a second key cache of its own for the ID tokens, with a fixed
 * refresh floor, beside the one the access tokens need; what remains here beyond jose is
 * two HTTP requests (discovery, code exchange) and the OIDC-specific claim checks.
 */
export function createProviderClient(provider: OidcProvider, options: ProviderClientOptions) {
  let metadata: Promise<ProviderMetadata> | undefined
  let keys: JWTVerifyGetKey | undefined

  async function request(url: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(url, {
        ...init,
        redirect: 'error',
        signal: AbortSignal.timeout(options.httpTimeoutMs),
      })
    } catch {
      throw new OidcProviderUnavailable(`The provider ${provider.name} cannot be reached.`, {
        reason: 'provider_unreachable',
      })
    }
  }

  async function discover(): Promise<ProviderMetadata> {
    const url = `${provider.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
    const response = await request(url, { headers: { accept: 'application/json' } })
    const document = (await response.json().catch(() => null)) as Record<string, unknown> | null
    if (!response.ok || !document) {
      throw new OidcProviderUnavailable(
        `The provider ${provider.name} answered its discovery request with ${response.status}.`,
      )
    }
    // OpenID Connect Discovery §4.3: the document must name exactly the issuer asked for.
    const required = ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const
    if (
      document.issuer !== provider.issuer ||
      required.some((field) => typeof document[field] !== 'string')
    ) {
      throw new OidcProviderUnavailable(
        `The provider ${provider.name} published metadata for another issuer or without endpoints.`,
      )
    }
    return document as unknown as ProviderMetadata
  }

  /** Discovered once; a failure is not kept, so the next sign-in asks again. */
  function getMetadata(): Promise<ProviderMetadata> {
    metadata ??= discover().catch((error) => {
      metadata = undefined
      throw error
    })
    return metadata
  }

  async function getKeys(): Promise<JWTVerifyGetKey> {
    const { jwks_uri } = await getMetadata()
    keys ??= createRemoteJWKSet(new URL(jwks_uri), {
      cooldownDuration: options.jwksCooldownMs,
      timeoutDuration: options.httpTimeoutMs,
    })
    return keys
  }

  async function verify(
    token: string,
    expected: { issuer: string; audience: string },
  ): Promise<JWTPayload> {
    const jwks = await getKeys()
    try {
      const { payload } = await jwtVerify(token, jwks, {
        issuer: expected.issuer,
        audience: expected.audience,
        algorithms: provider.algorithms,
        clockTolerance: options.clockToleranceSeconds,
        requiredClaims: ['sub', 'exp', 'iat'],
      })
      return payload
    } catch (error) {
      if (error instanceof joseErrors.JWKSTimeout) {
        throw new OidcProviderUnavailable(`The keys of ${provider.name} cannot be fetched.`)
      }
      if (error instanceof joseErrors.JOSEError) {
        throw new OidcIdTokenInvalid(reasonOf(error), { reason: error.code })
      }
      throw error
    }
  }

  return {
    provider,
    metadata: getMetadata,

    async authorizationUrl(authorization: AuthorizationRequest): Promise<string> {
      const url = new URL((await getMetadata()).authorization_endpoint)
      url.search = new URLSearchParams({
        ...Object.fromEntries(url.searchParams),
        response_type: 'code',
        client_id: provider.client_id,
        redirect_uri: authorization.redirectUri,
        scope: provider.scopes.join(' '),
        state: authorization.state,
        nonce: authorization.nonce,
        code_challenge: codeChallengeOf(authorization.codeVerifier),
        code_challenge_method: 'S256',
      }).toString()
      return url.href
    },

    /** Exchanges an authorization code for the provider's tokens; returns the ID token. */
    async exchangeCode(code: string, redirectUri: string, codeVerifier: string): Promise<string> {
      const meta = await getMetadata()
      const form = new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        code_verifier: codeVerifier,
      })
      const headers: Record<string, string> = {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      }
      const methods = meta.token_endpoint_auth_methods_supported ?? ['client_secret_basic']
      if (!provider.clientSecret) {
        form.set('client_id', provider.client_id)
      } else if (methods.includes('client_secret_basic')) {
        // RFC 6749 §2.3.1: both parts form-encoded before Basic's base64.
        const credentials = `${encodeURIComponent(provider.client_id)}:${encodeURIComponent(provider.clientSecret)}`
        headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`
      } else {
        form.set('client_id', provider.client_id)
        form.set('client_secret', provider.clientSecret)
      }
      const response = await request(meta.token_endpoint, { method: 'POST', headers, body: form })
      const body = (await response.json().catch(() => null)) as Record<string, unknown> | null
      if (!response.ok) {
        // An authorization code that was used, expired or forged answers invalid_grant.
        if (response.status === 400 && typeof body?.error === 'string') {
          throw new OidcIdTokenInvalid(
            `The provider refused the authorization code (${body.error}).`,
            {
              reason: `token_endpoint_${body.error}`,
            },
          )
        }
        throw new OidcProviderUnavailable(
          `The provider ${provider.name} answered the code exchange with ${response.status}.`,
        )
      }
      if (typeof body?.id_token !== 'string') {
        throw new OidcIdTokenInvalid('The provider answered without an ID token.', {
          reason: 'id_token_missing',
        })
      }
      return body.id_token
    },

    /**
     * Validates an ID token (OpenID Connect Core §3.1.3.7): signature with an allowed
     * algorithm, iss, aud, exp and iat, the nonce bound to the browser, and azp.
     */
    async validateIdToken(idToken: string, nonce: string): Promise<JWTPayload> {
      const claims = await verify(idToken, {
        issuer: (await getMetadata()).issuer,
        audience: provider.client_id,
      })
      if (claims.nonce !== nonce) {
        throw new OidcIdTokenInvalid('The ID token was not issued for this sign-in.', {
          reason: 'nonce_mismatch',
        })
      }
      // With several audiences azp must name this client; present, it must name it anyway.
      const audiences = isStringArray(claims.aud) ? claims.aud : [claims.aud]
      if ((audiences.length > 1 || claims.azp !== undefined) && claims.azp !== provider.client_id) {
        throw new OidcIdTokenInvalid('The ID token was issued to another party.', {
          reason: 'azp_mismatch',
        })
      }
      return claims
    },

    /** Validates an access token the provider issued for this API (client credentials). */
    async validateAccessToken(token: string): Promise<JWTPayload> {
      const service = provider.service_tokens
      if (!service) throw new OidcIdTokenInvalid('Service tokens are off.', { reason: 'off' })
      const claims = await verify(token, {
        issuer: service.issuer ?? (await getMetadata()).issuer,
        audience: service.audience,
      })
      // An ID token can carry this API's audience too (Entra names the app by its client id
      // in both); its nonce, or Keycloak's typ claim, gives it away.
      if (claims.nonce !== undefined || claims.typ === 'ID') {
        throw new OidcIdTokenInvalid('An ID token is no access token.', { reason: 'id_token' })
      }
      return claims
    },

    /** RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), when offered. */
    async endSessionUrl(postLogoutRedirectUri: string | undefined): Promise<string | undefined> {
      const endpoint = (await getMetadata()).end_session_endpoint
      if (!endpoint) return undefined
      const url = new URL(endpoint)
      url.searchParams.set('client_id', provider.client_id)
      if (postLogoutRedirectUri) {
        url.searchParams.set('post_logout_redirect_uri', postLogoutRedirectUri)
      }
      return url.href
    },
  }
}

export type ProviderClient = ReturnType<typeof createProviderClient>

function reasonOf(error: InstanceType<typeof joseErrors.JOSEError>): string {
  if (error instanceof joseErrors.JWTExpired) return 'The token has expired.'
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return `The token's ${error.claim} claim is not valid.`
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return 'The token is signed with an algorithm that is not allowed.'
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) {
    return 'The token is signed with a key the provider does not publish.'
  }
  return 'The token signature or format is not valid.'
}
