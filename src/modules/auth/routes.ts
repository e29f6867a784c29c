import formbody from '@fastify/formbody'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError } from 'fastify'
import { Type } from 'typebox'
import { callerOf } from '../../platform/auth.js'
import { loginThrottle } from '../../platform/rate-limit.js'
import { ROLES } from '../../shared/caller.js'
import { problemResponses } from '../../shared/schemas.js'
import { actorOf } from '../audit/actor.js'
import { RegistrationClosed } from '../users/errors.js'
import { UserRegisterSchema, UserSchema } from '../users/schemas.js'
import type { UserService } from '../users/service.js'
import { OAuthError } from './errors.js'
import {
  OAuthErrorSchema,
  RevokeRequestSchema,
  TokenRequestSchema,
  TokenResponseSchema,
} from './schemas.js'
import type { AuthService } from './service.js'

export interface AuthRoutesOptions {
  auth: AuthService
  users: UserService
  registrationEnabled: boolean
  loginLimit: { max: number; windowMs: number }
}

const tags = ['auth']
// RFC 6749 §5.1: token responses must never be cached.
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' }

export const authRoutes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (app, options) => {
  // Form bodies only here: the token and revocation endpoints speak OAuth's encoding.
  await app.register(formbody)

  app.post(
    '/register',
    {
      config: { auth: { public: true } },
      schema: {
        summary: 'Register a user account',
        description:
          'Creates a user with the `user` role. Can be switched off (`REGISTRATION_ENABLED`); off ' +
          'by default in production and wherever password sign-in is off.',
        tags,
        body: UserRegisterSchema,
        response: { 201: UserSchema, ...problemResponses(400, 403, 409, 415, 422, 429) },
      },
    },
    async (request, reply) => {
      if (!options.registrationEnabled)
        throw new RegistrationClosed('Registration is closed; ask an admin.')
      const user = await options.users.register(request.body, actorOf(request))
      return reply.code(201).header('location', `/v1/users/${user.id}`).send(user)
    },
  )

  app.post(
    '/token',
    {
      config: { auth: { public: true }, rateLimit: false },
      preHandler: loginThrottle(app, {
        ...options.loginLimit,
        username: (request) =>
          (request.body as { username?: unknown } | undefined)?.username as string | undefined,
      }),
      errorHandler: (error: FastifyError, _request, reply) => {
        if (error instanceof OAuthError) {
          return reply
            .code(400)
            .headers(NO_STORE)
            .send({ error: error.error, error_description: error.description })
        }
        if (error.validation) {
          return reply
            .code(400)
            .headers(NO_STORE)
            .send({ error: 'invalid_request', error_description: 'Malformed token request.' })
        }
        throw error
      },
      schema: {
        summary: 'Get tokens (OAuth 2.0 token endpoint)',
        description:
          'Form-encoded (`application/x-www-form-urlencoded`, as OAuth clients send it; JSON with the ' +
          'same fields is accepted too). `grant_type=password` with `username` ' +
          '(email) and `password`, `grant_type=refresh_token` with `refresh_token`, or ' +
          '`grant_type=authorization_code` with the one-time `code` of a single sign-on (and its ' +
          '`redirect_uri` and `code_verifier`). Errors follow ' +
          'RFC 6749 §5.2. Rate limited per client address and per username.',
        tags,
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: TokenRequestSchema,
        response: {
          200: TokenResponseSchema,
          400: OAuthErrorSchema,
          ...problemResponses(415, 429, 503),
        },
      },
    },
    async (request, reply) =>
      reply.headers(NO_STORE).send(await options.auth.token(request.body, actorOf(request))),
  )

  app.post(
    '/revoke',
    {
      config: { auth: { roles: ROLES } },
      schema: {
        summary: 'Log out: revoke a refresh token (RFC 7009)',
        description:
          'Revokes the token and every token rotated from the same login. Unknown tokens answer 200 too.',
        tags,
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: RevokeRequestSchema,
        response: {
          200: Type.Object({}, { additionalProperties: false }),
          ...problemResponses(400, 415, 422),
        },
      },
    },
    async (request) => {
      await options.auth.revoke(callerOf(request), request.body.token, actorOf(request))
      return {}
    },
  )
}
