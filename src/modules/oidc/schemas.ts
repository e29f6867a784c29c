import { type Static, Type } from 'typebox'

export const ProviderParamsSchema = Type.Object(
  { provider: Type.String({ pattern: '^[a-z0-9]+(-[a-z0-9]+)*$', maxLength: 32 }) },
  { additionalProperties: false },
)

/**
 * The front end's side of the sign-in, shaped as an OAuth 2.0 authorization request
 * (RFC 6749 §4.1.1) so that OAuth clients such as Swagger UI drive it as they are: the
 * parameters they always send (response_type, client_id, scope) are accepted and ignored.
 */
export const LoginQuerySchema = Type.Object(
  {
    redirect_uri: Type.Optional(
      Type.String({
        maxLength: 2000,
        description:
          'Where the one-time code goes: one of OIDC_CLIENT_REDIRECT_URIS (the first when absent).',
      }),
    ),
    state: Type.Optional(
      Type.String({ maxLength: 512, description: 'Handed back unchanged with the code.' }),
    ),
    code_challenge: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]{43}$',
        description: 'The front end’s own PKCE challenge (S256); its verifier redeems the code.',
      }),
    ),
    code_challenge_method: Type.Optional(Type.Literal('S256')),
    response_type: Type.Optional(Type.Literal('code')),
    client_id: Type.Optional(Type.String({ maxLength: 200 })),
    scope: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
)
export type LoginQuery = Static<typeof LoginQuerySchema>

/** The provider's answer (RFC 6749 §4.1.2); providers add parameters of their own. */
export const CallbackQuerySchema = Type.Object(
  {
    state: Type.Optional(Type.String({ maxLength: 2000 })),
    code: Type.Optional(Type.String({ maxLength: 4000 })),
    // RFC 6749 §4.1.2.1's character set for error codes.
    error: Type.Optional(Type.String({ pattern: '^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]{1,200}$' })),
    error_description: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: true },
)
export type CallbackQuery = Static<typeof CallbackQuerySchema>

export const LogoutQuerySchema = Type.Object(
  {
    post_logout_redirect_uri: Type.Optional(
      Type.String({
        maxLength: 2000,
        description: 'Where the provider sends the browser afterwards (an allowed front-end URL).',
      }),
    ),
  },
  { additionalProperties: false },
)

export const ProviderListSchema = Type.Object(
  {
    items: Type.Array(
      Type.Object(
        {
          name: Type.String({ examples: ['entra'] }),
          display_name: Type.String({ examples: ['Contoso (Entra ID)'] }),
          login_url: Type.String({ examples: ['/v1/auth/oidc/entra/login'] }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

export const RedirectSchema = Type.Null({ description: 'A redirect; see the Location header.' })
