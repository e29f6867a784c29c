import { AppError } from '../../shared/errors.js'

/**
 * A single sign-on that did not complete. `reason` is the precise cause, written to the
 * audit log for admins; the client gets the code and a plain message.
 */
export class OidcError extends AppError {
  constructor(
    code: string,
    status: number,
    message: string,
    readonly reason: string,
  ) {
    super(code, status, message)
    this.name = 'OidcError'
  }
}

function defineOidcError(code: string, status: number) {
  return class extends OidcError {
    constructor(message: string, options: { reason?: string } = {}) {
      super(code, status, message, options.reason ?? code.toLowerCase())
    }
  }
}

export const OidcProviderNotFound = defineOidcError('OIDC_PROVIDER_NOT_FOUND', 404)
/** The login cookie is missing, forged or expired, or the state does not match it. */
export const OidcLoginStateInvalid = defineOidcError('OIDC_LOGIN_STATE_INVALID', 400)
export const OidcRedirectUriNotAllowed = defineOidcError('OIDC_REDIRECT_URI_NOT_ALLOWED', 400)
/** The provider answered the authorization request with an error (e.g. access_denied). */
export const OidcProviderDenied = defineOidcError('OIDC_PROVIDER_DENIED', 403)
export const OidcIdTokenInvalid = defineOidcError('OIDC_ID_TOKEN_INVALID', 401)
export const OidcClaimMissing = defineOidcError('OIDC_CLAIM_MISSING', 403)
export const OidcRoleUnmapped = defineOidcError('OIDC_ROLE_UNMAPPED', 403)
export const OidcAccountDisabled = defineOidcError('OIDC_ACCOUNT_DISABLED', 403)
/** A local account has the email, and linking by email is off or the email is unverified. */
export const OidcAccountExists = defineOidcError('OIDC_ACCOUNT_EXISTS', 409)
export const OidcProviderUnavailable = defineOidcError('OIDC_PROVIDER_UNAVAILABLE', 502)
export const OidcLogoutUnsupported = defineOidcError('OIDC_LOGOUT_UNSUPPORTED', 404)
