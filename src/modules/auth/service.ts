import type { InTransaction, Transaction } from '../../db/client.js'
import type { UserRow } from '../../db/schema/index.js'
import type { Credentials } from '../../platform/auth.js'
import type { Caller, Role } from '../../shared/caller.js'
import type { CredentialCache } from '../../shared/credential-cache.js'
import { Unauthenticated } from '../../shared/errors.js'
import { hashSecret, randomSecret } from '../../shared/secrets.js'
import type { ApiKeyService } from '../api-keys/service.js'
import type { UserRepository } from '../users/repository.js'
import type { AccessTokens } from './access-tokens.js'
import { OAuthError } from './errors.js'
import { verifyNobody, verifyPassword } from './passwords.js'
import type { RefreshTokenRepository } from './refresh-tokens.js'
import type { TokenRequest, TokenResponse } from './schemas.js'

/** What authenticating a bearer token needs to know about its user, beyond the token. */
export interface UserAuthState {
  id: string
  role: Role
  isActive: boolean
  authVersion: number
}

export interface AuthServiceDeps {
  users: UserRepository
  refreshTokens: RefreshTokenRepository
  accessTokens: AccessTokens
  apiKeys: ApiKeyService
  inTransaction: InTransaction
  /** Bearer requests read the user's auth state through it instead of the database. */
  userStates: CredentialCache<UserAuthState>
  refreshTokenTtlSeconds: number
  now?: () => Date
}

// One answer for every failed login, whatever failed, so it tells nothing about accounts.
const BAD_LOGIN = 'The email or password is wrong, or the account is disabled.'
const BAD_REFRESH = 'The refresh token is invalid, expired or revoked.'

export function createAuthService(deps: AuthServiceDeps) {
  const { users, refreshTokens, accessTokens, inTransaction } = deps
  const now = deps.now ?? (() => new Date())

  async function loadUserState(id: string): Promise<UserAuthState | undefined> {
    const row = await users.findById(id)
    return (
      row && { id: row.id, role: row.role, isActive: row.isActive, authVersion: row.authVersion }
    )
  }

  async function issueTokens(
    user: UserRow,
    familyId?: string,
    tx?: Transaction,
  ): Promise<TokenResponse> {
    const refreshToken = randomSecret()
    await refreshTokens.insert(
      {
        userId: user.id,
        familyId,
        tokenHash: hashSecret(refreshToken),
        expiresAt: new Date(now().getTime() + deps.refreshTokenTtlSeconds * 1000),
      },
      tx,
    )
    return {
      access_token: await accessTokens.issue(user),
      token_type: 'bearer',
      expires_in: accessTokens.ttlSeconds,
      refresh_token: refreshToken,
    }
  }

  async function passwordGrant(
    username: string | undefined,
    password: string | undefined,
  ): Promise<TokenResponse> {
    if (!username || !password)
      throw new OAuthError('invalid_request', 'username and password are required.')
    const user = await users.findByEmail(username)
    // Unknown emails still pay for one hash verification: same answer, similar timing.
    const valid = user
      ? await verifyPassword(user.passwordHash, password)
      : await verifyNobody(password)
    if (!user || !valid || !user.isActive) throw new OAuthError('invalid_grant', BAD_LOGIN)
    await users.update(user.id, { lastLoginAt: now() })
    return issueTokens(user)
  }

  async function refreshGrant(token: string | undefined): Promise<TokenResponse> {
    if (!token) throw new OAuthError('invalid_request', 'refresh_token is required.')
    const at = now()
    const outcome = await inTransaction(async (tx) => {
      const row = await refreshTokens.findForUpdate(hashSecret(token), tx)
      if (!row) return { ok: false as const }
      if (row.usedAt || row.revokedAt) {
        // RFC 9700 §4.14.2: a rotated token shows up again, so it leaked. Whoever holds the
        // family, attacker or user, loses it; the user logs in again.
        await refreshTokens.revokeFamily(row.familyId, at, tx)
        return { ok: false as const }
      }
      if (row.expiresAt <= at) return { ok: false as const }
      const user = await users.findById(row.userId, tx)
      if (!user?.isActive) return { ok: false as const }
      await refreshTokens.markUsed(row.id, at, tx)
      return { ok: true as const, tokens: await issueTokens(user, row.familyId, tx) }
    })
    if (!outcome.ok) throw new OAuthError('invalid_grant', BAD_REFRESH)
    return outcome.tokens
  }

  return {
    /** The OAuth 2.0 token endpoint (RFC 6749 §4.3 password grant, §6 refresh). */
    async token(request: TokenRequest): Promise<TokenResponse> {
      switch (request.grant_type) {
        case 'password':
          return passwordGrant(request.username, request.password)
        case 'refresh_token':
          return refreshGrant(request.refresh_token)
        case undefined:
        case '':
          throw new OAuthError('invalid_request', 'grant_type is required.')
        default:
          throw new OAuthError(
            'unsupported_grant_type',
            'Use grant_type=password or grant_type=refresh_token.',
          )
      }
    },

    /**
     * RFC 7009 revocation, used to log out: revokes the refresh token's whole family when it
     * belongs to the caller. Unknown tokens are not an error, as the RFC asks.
     */
    async revoke(caller: Caller, token: string): Promise<void> {
      const row = await refreshTokens.findByHash(hashSecret(token))
      if (row && row.userId === caller.userId) await refreshTokens.revokeFamily(row.familyId, now())
    },

    /** Turns presented credentials into a caller, checking the user is active and current. */
    async authenticate(credentials: Credentials): Promise<Caller> {
      if (credentials.kind === 'api_key') {
        const caller = await deps.apiKeys.resolve(credentials.key)
        if (!caller) throw new Unauthenticated('The API key is not valid.')
        return caller
      }
      const claims = await accessTokens.verify(credentials.token)
      const user = await deps.userStates.get(claims.sub, loadUserState)
      // A password change or deactivation bumps auth_version: older tokens stop here.
      if (!user?.isActive || user.authVersion !== claims.ver) {
        throw new Unauthenticated('The access token has been revoked.')
      }
      return { userId: user.id, role: user.role, apiKeyId: null }
    },
  }
}

export type AuthService = ReturnType<typeof createAuthService>
