import { randomUUID } from 'node:crypto'
import type { InTransaction, Transaction } from '../../db/client.js'
import type { UserRow } from '../../db/schema/index.js'
import type { Credentials } from '../../platform/auth.js'
import type { Caller, Role } from '../../shared/caller.js'
import type { CredentialCache } from '../../shared/credential-cache.js'
import { Unauthenticated } from '../../shared/errors.js'
import { hashSecret, randomSecret } from '../../shared/secrets.js'
import type { ApiKeyService } from '../api-keys/service.js'
import type { Actor } from '../audit/actor.js'
import { recordAudit } from '../audit/log.js'
import { codeChallengeOf } from '../oidc/provider-client.js'
import type { UserRepository } from '../users/repository.js'
import type { AccessTokens } from './access-tokens.js'
import { OAuthError } from './errors.js'
import type { LoginCodeRepository } from './login-codes.js'
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
  /** The one-time codes single sign-on hands to the front end. */
  loginCodes: LoginCodeRepository
  /** False refuses the password grant: users sign in through single sign-on only. */
  passwordLoginEnabled: boolean
  /**
   * Access tokens issued by a single sign-on provider for this API, tried only for bearer
   * tokens the service's own verification refused; undefined when the token is no such one.
   */
  providerTokens?: (token: string) => Promise<Caller | undefined>
  now?: () => Date
}

// One answer for every failed login, whatever failed, so it tells nothing about accounts.
const BAD_LOGIN = 'The email or password is wrong, or the account is disabled.'
const BAD_REFRESH = 'The refresh token is invalid, expired or revoked.'
const BAD_CODE = 'The code is invalid, expired or already used, or does not match this request.'

type SignInFailure = 'unknown_account' | 'wrong_password' | 'account_disabled'

function signInFailure(user: UserRow | undefined, passwordValid: boolean): SignInFailure | null {
  if (!user) return 'unknown_account'
  if (!passwordValid) return 'wrong_password'
  return user.isActive ? null : 'account_disabled'
}

/**
 * Whom a failed sign-in was aimed at, for its audit event: the account's id when the email
 * names one; otherwise a SHA-256 of the name as typed (trimmed, lower-cased), never the name
 * itself. The field is free text: people type their password into it, and an unknown
 * address is personal data of someone who may have no account. The digest still lets an
 * admin count attempts per name and check a suspected address by hashing it; being unkeyed,
 * it would not hide a weak password typed there from an admin set on guessing it.
 */
function attemptedAccount(username: string, user: UserRow | undefined): string {
  return user ? user.id : `sha256:${hashSecret(username.trim().toLowerCase())}`
}

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
    familyId: string,
    tx: Transaction,
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
    actor: Actor,
  ): Promise<TokenResponse> {
    if (!username || !password)
      throw new OAuthError('invalid_request', 'username and password are required.')
    const user = await users.findByEmail(username)
    // Unknown emails still pay for one hash verification: same answer, similar timing.
    const valid = user
      ? await verifyPassword(user.passwordHash, password)
      : await verifyNobody(password)
    const failure = signInFailure(user, valid)
    if (!user || failure) {
      // No one has authenticated, so the event has no actor; the reason stays in the audit
      // log, which only admins read, while the client gets one answer for all of them.
      await inTransaction((tx) =>
        recordAudit(tx, actor, {
          action: 'sign_in_failed',
          resourceType: 'user',
          resourceId: attemptedAccount(username, user),
          changes: { reason: { after: failure } },
        }),
      )
      throw new OAuthError('invalid_grant', BAD_LOGIN)
    }
    const familyId = randomUUID()
    return inTransaction(async (tx) => {
      await users.update(user.id, { lastLoginAt: now() }, tx)
      await recordAudit(
        tx,
        { ...actor, userId: user.id },
        { action: 'sign_in', resourceType: 'session', resourceId: familyId, changes: {} },
      )
      return issueTokens(user, familyId, tx)
    })
  }

  /**
   * RFC 6749 §4.1.3, for the one-time code a single sign-on redirected to the front end
   * with. The code is taken out before it is checked, so a code presented with a wrong
   * verifier or redirect_uri is gone as well: an intercepted code is worth one try.
   */
  async function authorizationCodeGrant(request: TokenRequest): Promise<TokenResponse> {
    if (!request.code) throw new OAuthError('invalid_request', 'code is required.')
    const row = await deps.loginCodes.consume(hashSecret(request.code), now())
    const matches =
      row !== undefined &&
      (request.redirect_uri === undefined
        ? !row.redirectUriRequired
        : request.redirect_uri === row.redirectUri) &&
      (row.codeChallenge === null ||
        (request.code_verifier !== undefined &&
          codeChallengeOf(request.code_verifier) === row.codeChallenge))
    if (!row || !matches) throw new OAuthError('invalid_grant', BAD_CODE)
    return inTransaction(async (tx) => {
      const user = await users.findById(row.userId, tx)
      if (!user?.isActive) throw new OAuthError('invalid_grant', BAD_CODE)
      return issueTokens(user, row.familyId, tx)
    })
  }

  async function refreshGrant(token: string | undefined, actor: Actor): Promise<TokenResponse> {
    if (!token) throw new OAuthError('invalid_request', 'refresh_token is required.')
    const at = now()
    const outcome = await inTransaction(async (tx) => {
      const row = await refreshTokens.findForUpdate(hashSecret(token), tx)
      if (!row) return { ok: false as const }
      if (row.usedAt || row.revokedAt) {
        // RFC 9700 §4.14.2: a rotated token shows up again, so it leaked. Whoever holds the
        // family, attacker or user, loses it; the user logs in again.
        await refreshTokens.revokeFamily(row.familyId, at, tx)
        // The presenter proved nothing, so the event has no actor; the session names whose
        // login was cut.
        await recordAudit(tx, actor, {
          action: 'refresh_token_reused',
          resourceType: 'session',
          resourceId: row.familyId,
          changes: { user_id: { after: row.userId } },
        })
        return { ok: false as const }
      }
      if (row.expiresAt <= at) return { ok: false as const }
      const user = await users.findById(row.userId, tx)
      if (!user?.isActive) return { ok: false as const }
      await refreshTokens.markUsed(row.id, at, tx)
      await recordAudit(
        tx,
        { ...actor, userId: user.id },
        { action: 'token_refresh', resourceType: 'session', resourceId: row.familyId, changes: {} },
      )
      return { ok: true as const, tokens: await issueTokens(user, row.familyId, tx) }
    })
    if (!outcome.ok) throw new OAuthError('invalid_grant', BAD_REFRESH)
    return outcome.tokens
  }

  return {
    /** The OAuth 2.0 token endpoint (RFC 6749 §4.3 password grant, §6 refresh). */
    async token(request: TokenRequest, actor: Actor): Promise<TokenResponse> {
      switch (request.grant_type) {
        case 'password':
          if (!deps.passwordLoginEnabled) {
            throw new OAuthError(
              'unsupported_grant_type',
              'Password sign-in is switched off here; sign in with single sign-on.',
            )
          }
          return passwordGrant(request.username, request.password, actor)
        case 'authorization_code':
          return authorizationCodeGrant(request)
        case 'refresh_token':
          return refreshGrant(request.refresh_token, actor)
        case undefined:
        case '':
          throw new OAuthError('invalid_request', 'grant_type is required.')
        default:
          throw new OAuthError(
            'unsupported_grant_type',
            'Use grant_type=password, refresh_token or authorization_code.',
          )
      }
    },

    /**
     * RFC 7009 revocation, used to log out: revokes the refresh token's whole family when it
     * belongs to the caller. Unknown tokens are not an error, as the RFC asks.
     */
    async revoke(caller: Caller, token: string, actor: Actor): Promise<void> {
      const row = await refreshTokens.findByHash(hashSecret(token))
      if (!row || row.userId !== caller.userId) return
      await inTransaction(async (tx) => {
        await refreshTokens.revokeFamily(row.familyId, now(), tx)
        // Revoking a family already revoked changes nothing, so it is no sign-out.
        if (row.revokedAt) return
        await recordAudit(tx, actor, {
          action: 'sign_out',
          resourceType: 'session',
          resourceId: row.familyId,
          changes: {},
        })
      })
    },

    /** Turns presented credentials into a caller, checking the user is active and current. */
    async authenticate(credentials: Credentials): Promise<Caller> {
      if (credentials.kind === 'api_key') {
        const caller = await deps.apiKeys.resolve(credentials.key)
        if (!caller) throw new Unauthenticated('The API key is not valid.')
        return caller
      }
      let claims: Awaited<ReturnType<AccessTokens['verify']>>
      try {
        claims = await accessTokens.verify(credentials.token)
      } catch (error) {
        const caller = await deps.providerTokens?.(credentials.token)
        if (caller) return caller
        throw error
      }
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
