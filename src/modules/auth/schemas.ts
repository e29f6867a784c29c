import { type Static, Type } from 'typebox'

/**
 * The token request as RFC 6749 defines it. Validation is the service's job here, so that
 * every problem is answered as an OAuth error (`invalid_request`), not as a 422.
 */
export const TokenRequestSchema = Type.Object(
  {
    grant_type: Type.Optional(
      Type.String({ description: '`password`, `refresh_token` or `authorization_code`.' }),
    ),
    username: Type.Optional(Type.String({ description: 'The email address (password grant).' })),
    password: Type.Optional(Type.String({ description: 'The password (password grant).' })),
    refresh_token: Type.Optional(
      Type.String({ description: 'The refresh token (refresh grant).' }),
    ),
    code: Type.Optional(
      Type.String({
        description: 'The one-time code of a single sign-on (authorization code grant).',
      }),
    ),
    redirect_uri: Type.Optional(
      Type.String({
        description:
          'The redirect_uri the sign-in started with (authorization code grant); required when the sign-in named one.',
      }),
    ),
    code_verifier: Type.Optional(
      Type.String({ description: 'The PKCE verifier, when the sign-in sent a code_challenge.' }),
    ),
    scope: Type.Optional(Type.String({ description: 'Ignored; access follows the user’s role.' })),
  },
  {
    additionalProperties: true,
    examples: [
      {
        grant_type: 'password',
        username: 'ada@example.com',
        password: 'correct horse battery staple',
      },
    ],
  },
)
export type TokenRequest = Static<typeof TokenRequestSchema>

export const TokenResponseSchema = Type.Object(
  {
    access_token: Type.String({
      description: 'A JWT; send it as `Authorization: Bearer <token>`.',
    }),
    token_type: Type.Literal('bearer'),
    expires_in: Type.Integer({
      description: 'Seconds until the access token expires.',
      examples: [900],
    }),
    refresh_token: Type.String({ description: 'Single use: each refresh answers a new one.' }),
  },
  { additionalProperties: false },
)
export type TokenResponse = Static<typeof TokenResponseSchema>

export const OAuthErrorSchema = Type.Object(
  {
    error: Type.String({ examples: ['invalid_grant'] }),
    error_description: Type.String({
      examples: ['The email or password is wrong, or the account is disabled.'],
    }),
  },
  { description: 'RFC 6749 §5.2 error.' },
)

export const RevokeRequestSchema = Type.Object(
  {
    token: Type.String({
      minLength: 1,
      maxLength: 512,
      description: 'The refresh token to revoke.',
    }),
    token_type_hint: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
)
