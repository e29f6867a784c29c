/**
 * An OAuth 2.0 token endpoint error (RFC 6749 §5.2). It is answered in the RFC's own shape,
 * `{error, error_description}` with status 400, which OAuth clients parse, rather than as
 * problem details.
 */
export class OAuthError extends Error {
  constructor(
    readonly error:
      | 'invalid_request'
      | 'invalid_grant'
      | 'unsupported_grant_type'
      | 'invalid_client',
    readonly description: string,
  ) {
    super(description)
    this.name = 'OAuthError'
  }
}
