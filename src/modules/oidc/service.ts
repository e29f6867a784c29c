import { createHash, randomUUID } from 'node:crypto'
import type { JWTPayload } from 'jose'
import type { InTransaction, Transaction } from '../../db/client.js'
import type { UserRow } from '../../db/schema/index.js'
import type { Caller, Role } from '../../shared/caller.js'
import type { CredentialCache } from '../../shared/credential-cache.js'
import { Forbidden, isUniqueViolation, Unauthenticated } from '../../shared/errors.js'
import { hashSecret, randomSecret } from '../../shared/secrets.js'
import { type Actor, SYSTEM_ACTOR } from '../audit/actor.js'
import { recordAudit } from '../audit/log.js'
import type { LoginCodeRepository } from '../auth/login-codes.js'
import type { UserRepository } from '../users/repository.js'
import {
  OidcAccountDisabled,
  OidcAccountExists,
  OidcClaimMissing,
  OidcError,
  OidcIdTokenInvalid,
  OidcLoginStateInvalid,
  OidcLogoutUnsupported,
  OidcProviderDenied,
  OidcProviderNotFound,
  OidcRedirectUriNotAllowed,
  OidcRoleUnmapped,
} from './errors.js'
import type { LoginStateSealer } from './login-state.js'
import type { ProviderClient } from './provider-client.js'
import { mapRole, type OidcProvider } from './provider-config.js'
import type { IdentityRepository } from './repository.js'
import type { CallbackQuery, LoginQuery } from './schemas.js'

/** A service principal as cached: its local user and whether that user is active. */
export interface PrincipalState {
  userId: string
  isActive: boolean
}

export interface OidcServiceDeps {
  clients: readonly ProviderClient[]
  users: UserRepository
  identities: IdentityRepository
  loginCodes: LoginCodeRepository
  inTransaction: InTransaction
  sealer: LoginStateSealer
  /** The service's public origin: the provider redirects back to it. */
  publicUrl: string
  /** Front-end URLs a finished sign-in may return to; the first is the default. */
  clientRedirectUris: readonly string[]
  /** Service principals by provider and subject, so a token costs no database read. */
  principals: CredentialCache<PrincipalState>
  credentialsChanged: (userId: string) => void
  now?: () => Date
}

/** Long enough to type a password and approve a second factor at the provider. */
const LOGIN_STATE_TTL_S = 600
/** The front end redeems the code right after the redirect; a minute allows a slow page. */
const LOGIN_CODE_TTL_S = 60
const IDENTITY_CONSTRAINT = 'user_identities_provider_subject_key'
const EMAIL_CONSTRAINT = 'users_email_key'

export interface LoginStart {
  location: string
  cookie: string
  cookieMaxAgeSeconds: number
}

function stringClaim(claims: JWTPayload, name: string): string | undefined {
  const value = claims[name]
  return typeof value === 'string' && value.length > 0 ? value : undefined
}

/** The `iss` of a JWT, read without verifying it: only to pick which provider verifies. */
function issuerOf(token: string): unknown {
  const start = token.indexOf('.') + 1
  const end = token.indexOf('.', start)
  if (start === 0 || end === -1) return undefined
  try {
    return (JSON.parse(Buffer.from(token.slice(start, end), 'base64url').toString()) as JWTPayload)
      .iss
  } catch {
    return undefined
  }
}

/** A service principal's placeholder address: unique, and `.invalid` never delivers (RFC 2606). */
function principalEmail(provider: string, subject: string): string {
  const id = createHash('sha256').update(`${provider}\0${subject}`).digest('hex').slice(0, 24)
  return `service-${id}@${provider}.invalid`
}

export function createOidcService(deps: OidcServiceDeps) {
  const { users, identities, loginCodes, inTransaction, sealer } = deps
  const now = deps.now ?? (() => new Date())
  const clients = new Map(deps.clients.map((client) => [client.provider.name, client]))
  const serviceClients = new Map<string, ProviderClient>()
  for (const client of deps.clients) {
    const service = client.provider.service_tokens
    if (service) serviceClients.set(service.issuer ?? client.provider.issuer, client)
  }
  const allowedRedirects = new Set(deps.clientRedirectUris)

  const callbackUrl = (name: string) => `${deps.publicUrl}/v1/auth/oidc/${name}/callback`

  function loginClient(name: string): ProviderClient {
    const client = clients.get(name)
    if (!client?.provider.login) {
      throw new OidcProviderNotFound(`No single sign-on provider is named ${name}.`)
    }
    return client
  }

  /** Finds or creates the local user of a verified sign-in, inside the caller's transaction. */
  async function userOf(
    provider: OidcProvider,
    claims: JWTPayload,
    role: Role,
    actor: Actor,
    tx: Transaction,
  ): Promise<{ user: UserRow; roleChanged: boolean }> {
    const subject = claims.sub as string
    const email = stringClaim(claims, provider.email_claim)?.toLowerCase() ?? null
    const identity = await identities.find(provider.name, subject, tx)
    let user: UserRow | undefined
    if (identity) {
      user = await users.findByIdForUpdate(identity.userId, tx)
      await identities.touch(identity.id, email, now(), tx)
    } else {
      if (!email) {
        throw new OidcClaimMissing(`The provider sent no ${provider.email_claim} claim.`)
      }
      user = await users.findByEmail(email, tx)
      if (user && !(provider.link_verified_email && claims.email_verified === true)) {
        // Anyone who can register that address at some provider would otherwise own the account.
        throw new OidcAccountExists(
          'An account with this email exists already; an admin can allow linking it.',
          { reason: provider.link_verified_email ? 'email_not_verified' : 'linking_off' },
        )
      }
      if (!user) {
        user = await users.insert(
          {
            email,
            fullName: stringClaim(claims, provider.name_claim) ?? email,
            role,
            passwordHash: null,
          },
          tx,
        )
        await recordAudit(
          tx,
          { ...actor, userId: user.id },
          {
            action: 'create',
            resourceType: 'user',
            resourceId: user.id,
            changes: { email: { after: email }, role: { after: role } },
          },
        )
      }
      await identities.insert({ userId: user.id, provider: provider.name, subject, email }, tx)
      await recordAudit(
        tx,
        { ...actor, userId: user.id },
        {
          action: 'create',
          resourceType: 'user_identity',
          resourceId: `${provider.name}:${subject}`,
          changes: { user_id: { after: user.id } },
        },
      )
    }
    if (!user?.isActive) {
      throw new OidcAccountDisabled('This account is disabled.', { reason: 'account_disabled' })
    }
    // The provider's mapping decides the role at every sign-in through it.
    const roleChanged = user.role !== role
    if (roleChanged) {
      await recordAudit(
        tx,
        { ...actor, userId: user.id },
        {
          action: 'update',
          resourceType: 'user',
          resourceId: user.id,
          changes: { role: { before: user.role, after: role } },
        },
      )
    }
    const updated = await users.update(user.id, { role, lastLoginAt: now() }, tx)
    return { user: updated ?? user, roleChanged }
  }

  async function signIn(
    client: ProviderClient,
    claims: JWTPayload,
    redirect: { uri: string; named: boolean; codeChallenge?: string },
    actor: Actor,
  ): Promise<{ code: string; userId: string }> {
    const { provider } = client
    const role = mapRole(claims, provider)
    if (!role) throw new OidcRoleUnmapped('Your account at the provider has no role here.')
    const code = randomSecret()
    const familyId = randomUUID()
    const attempt = () =>
      inTransaction(async (tx) => {
        const { user, roleChanged } = await userOf(provider, claims, role, actor, tx)
        await loginCodes.deleteExpired(now(), tx)
        await loginCodes.insert(
          {
            codeHash: hashSecret(code),
            userId: user.id,
            familyId,
            redirectUri: redirect.uri,
            redirectUriRequired: redirect.named,
            codeChallenge: redirect.codeChallenge ?? null,
            expiresAt: new Date(now().getTime() + LOGIN_CODE_TTL_S * 1000),
          },
          tx,
        )
        await recordAudit(
          tx,
          { ...actor, userId: user.id },
          {
            action: 'sign_in',
            resourceType: 'session',
            resourceId: familyId,
            changes: { method: { after: 'oidc' }, provider: { after: provider.name } },
          },
        )
        return { user, roleChanged }
      })
    let outcome: Awaited<ReturnType<typeof attempt>>
    try {
      outcome = await attempt()
    } catch (error) {
      // A first sign-in racing another of the same person: the loser finds the winner's rows.
      if (
        !isUniqueViolation(error, IDENTITY_CONSTRAINT) &&
        !isUniqueViolation(error, EMAIL_CONSTRAINT)
      )
        throw error
      outcome = await attempt()
    }
    if (outcome.roleChanged) deps.credentialsChanged(outcome.user.id)
    return { code, userId: outcome.user.id }
  }

  async function audited<T>(
    provider: string,
    actor: Actor,
    work: () => Promise<T>,
    subjectOf: () => string | undefined,
  ): Promise<T> {
    try {
      return await work()
    } catch (error) {
      if (!(error instanceof OidcError)) throw error
      const subject = subjectOf()
      await inTransaction((tx) =>
        recordAudit(tx, actor, {
          action: 'sign_in_failed',
          resourceType: subject ? 'user_identity' : 'user',
          resourceId: subject ? `${provider}:${subject}` : `oidc:${provider}`,
          changes: { reason: { after: error.reason }, provider: { after: provider } },
        }),
      )
      throw error
    }
  }

  async function principalOf(
    provider: string,
    claims: JWTPayload,
    role: Role,
  ): Promise<PrincipalState> {
    const subject = claims.sub as string
    const load = async (): Promise<PrincipalState> => {
      const identity = await identities.find(provider, subject)
      if (identity) {
        const user = await users.findById(identity.userId)
        return { userId: identity.userId, isActive: user?.isActive ?? false }
      }
      const client = stringClaim(claims, 'azp') ?? stringClaim(claims, 'client_id') ?? subject
      const created = await inTransaction(async (tx) => {
        const user = await users.insert(
          {
            email: principalEmail(provider, subject),
            fullName: `Service ${client} (${provider})`,
            role,
            passwordHash: null,
          },
          tx,
        )
        await identities.insert({ userId: user.id, provider, subject, email: null }, tx)
        await recordAudit(
          tx,
          { ...SYSTEM_ACTOR, userId: user.id },
          {
            action: 'create',
            resourceType: 'user_identity',
            resourceId: `${provider}:${subject}`,
            changes: { user_id: { after: user.id }, kind: { after: 'service' } },
          },
        )
        return user
      }).catch(async (error) => {
        // Two first requests of a new principal at once: the other one created it.
        if (
          !isUniqueViolation(error, IDENTITY_CONSTRAINT) &&
          !isUniqueViolation(error, EMAIL_CONSTRAINT)
        )
          throw error
        const identity = await identities.find(provider, subject)
        return identity && { id: identity.userId, isActive: true }
      })
      if (!created) throw new Unauthenticated('The provider token is not valid.')
      return { userId: created.id, isActive: created.isActive }
    }
    return (await deps.principals.get(`${provider}\0${subject}`, load)) as PrincipalState
  }

  return {
    /** Providers offering browser sign-in, for the front end's buttons. */
    providers() {
      return [...clients.values()]
        .filter((client) => client.provider.login)
        .map(({ provider }) => ({
          name: provider.name,
          display_name: provider.display_name ?? provider.name,
          login_url: `/v1/auth/oidc/${provider.name}/login`,
        }))
    },

    /** Starts a sign-in: the provider's authorization URL and the cookie binding it to the browser. */
    async startLogin(name: string, query: LoginQuery): Promise<LoginStart> {
      const client = loginClient(name)
      const clientRedirectUri = query.redirect_uri ?? deps.clientRedirectUris[0]
      if (!clientRedirectUri || !allowedRedirects.has(clientRedirectUri)) {
        throw new OidcRedirectUriNotAllowed(
          'redirect_uri is not one of the allowed front-end URLs (OIDC_CLIENT_REDIRECT_URIS).',
        )
      }
      const state = randomSecret()
      const nonce = randomSecret()
      const codeVerifier = randomSecret()
      const location = await client.authorizationUrl({
        redirectUri: callbackUrl(name),
        state,
        nonce,
        codeVerifier,
      })
      const cookie = sealer.seal({
        provider: name,
        state,
        nonce,
        codeVerifier,
        clientRedirectUri,
        clientRedirectUriNamed: query.redirect_uri !== undefined,
        clientState: query.state,
        clientCodeChallenge: query.code_challenge,
        expiresAt: Math.floor(now().getTime() / 1000) + LOGIN_STATE_TTL_S,
      })
      return { location, cookie, cookieMaxAgeSeconds: LOGIN_STATE_TTL_S }
    },

    /**
     * Finishes a sign-in at the callback: checks the state against the cookie, exchanges the
     * code, validates the ID token, signs the user in, and answers where to send the browser
     * (the front end, with a one-time code). Every failure is audited and thrown.
     */
    async finishLogin(
      name: string,
      query: CallbackQuery,
      cookie: string | undefined,
      actor: Actor,
    ): Promise<string> {
      const client = loginClient(name)
      let subject: string | undefined
      return audited(
        name,
        actor,
        async () => {
          const state = sealer.open(cookie, now().getTime() / 1000)
          if (!state || state.provider !== name || query.state !== state.state) {
            throw new OidcLoginStateInvalid(
              'This sign-in cannot be matched to one started in this browser, or it took too long; start again.',
              { reason: state ? 'state_mismatch' : 'login_cookie_invalid' },
            )
          }
          if (query.error) {
            throw new OidcProviderDenied(`The provider refused the sign-in (${query.error}).`, {
              reason: `provider_${query.error}`,
            })
          }
          if (!query.code) {
            throw new OidcLoginStateInvalid('The provider sent no authorization code.', {
              reason: 'code_missing',
            })
          }
          const idToken = await client.exchangeCode(
            query.code,
            callbackUrl(name),
            state.codeVerifier,
          )
          const claims = await client.validateIdToken(idToken, state.nonce)
          subject = claims.sub
          const { code } = await signIn(
            client,
            claims,
            {
              uri: state.clientRedirectUri,
              named: state.clientRedirectUriNamed === true,
              codeChallenge: state.clientCodeChallenge,
            },
            actor,
          )
          const target = new URL(state.clientRedirectUri)
          target.searchParams.set('code', code)
          if (state.clientState !== undefined) target.searchParams.set('state', state.clientState)
          return target.href
        },
        () => subject,
      )
    },

    /** Where to send the browser to sign out at the provider too. */
    async logoutUrl(name: string, postLogoutRedirectUri: string | undefined): Promise<string> {
      const client = loginClient(name)
      if (postLogoutRedirectUri !== undefined && !allowedRedirects.has(postLogoutRedirectUri)) {
        throw new OidcRedirectUriNotAllowed(
          'post_logout_redirect_uri is not one of the allowed front-end URLs.',
        )
      }
      const url = await client.endSessionUrl(postLogoutRedirectUri)
      if (!url) {
        throw new OidcLogoutUnsupported(`The provider ${name} offers no end-session endpoint.`)
      }
      return url
    },

    /**
     * A caller from an access token a provider issued for this API (client credentials), or
     * undefined when the token names no provider accepting such tokens. Only tokens the
     * service's own verification refused get here, so its own tokens never pay for this.
     */
    async authenticateServiceToken(token: string): Promise<Caller | undefined> {
      if (serviceClients.size === 0) return undefined
      const issuer = issuerOf(token)
      const client = typeof issuer === 'string' ? serviceClients.get(issuer) : undefined
      if (!client) return undefined
      let claims: JWTPayload
      try {
        claims = await client.validateAccessToken(token)
      } catch (error) {
        if (error instanceof OidcIdTokenInvalid) {
          throw new Unauthenticated('The provider token is not valid.')
        }
        throw error
      }
      const role = mapRole(claims, client.provider.service_tokens ?? {})
      if (!role) throw new Forbidden('The service principal maps to no role here.')
      const principal = await principalOf(client.provider.name, claims, role)
      if (!principal.isActive) throw new Unauthenticated('The service principal is disabled.')
      return { userId: principal.userId, role, apiKeyId: null }
    },
  }
}

export type OidcService = ReturnType<typeof createOidcService>
