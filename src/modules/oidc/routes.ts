import cookie from '@fastify/cookie'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses } from '../../shared/schemas.js'
import { actorOf } from '../audit/actor.js'
import {
  CallbackQuerySchema,
  LoginQuerySchema,
  LogoutQuerySchema,
  ProviderListSchema,
  ProviderParamsSchema,
  RedirectSchema,
} from './schemas.js'
import type { OidcService } from './service.js'

export interface OidcRoutesOptions {
  /** Absent when no provider is configured: the list is then empty and sign-in absent. */
  oidc: OidcService | undefined
  /** Cookies are Secure when the service is reached over HTTPS. */
  secureCookies: boolean
}

const tags = ['auth']
const LOGIN_COOKIE = 'oidc_login'
const callbackPath = (provider: string) => `/v1/auth/oidc/${provider}/callback`

export const oidcRoutes: FastifyPluginAsyncTypebox<OidcRoutesOptions> = async (app, options) => {
  const { oidc } = options

  // Always there, so a front end can ask whether to offer single sign-on at all.
  app.get(
    '',
    {
      config: { auth: { public: true } },
      schema: {
        summary: 'List the single sign-on providers',
        description:
          'The providers a user can sign in with, for the front end’s buttons; empty when ' +
          'single sign-on is not configured.',
        tags,
        response: { 200: ProviderListSchema },
      },
    },
    async () => ({ items: oidc?.providers() ?? [] }),
  )
  if (!oidc) return
  await app.register(cookie)

  app.get(
    '/:provider/login',
    {
      config: { auth: { public: true } },
      schema: {
        summary: 'Sign in with a provider (start)',
        description:
          'Redirects the browser to the provider (authorization code with PKCE, `state` and ' +
          '`nonce`, bound to this browser by a short-lived signed cookie). After the provider, ' +
          'the browser comes back to `redirect_uri` with a one-time `code` (and `state`), which ' +
          'the front end exchanges at `POST /v1/auth/token` with `grant_type=authorization_code`.',
        tags,
        params: ProviderParamsSchema,
        querystring: LoginQuerySchema,
        response: { 302: RedirectSchema, ...problemResponses(400, 404, 422, 502) },
      },
    },
    async (request, reply) => {
      const start = await oidc.startLogin(request.params.provider, request.query)
      return reply
        .setCookie(LOGIN_COOKIE, start.cookie, {
          path: callbackPath(request.params.provider),
          httpOnly: true,
          secure: options.secureCookies,
          sameSite: 'lax',
          maxAge: start.cookieMaxAgeSeconds,
        })
        .header('cache-control', 'no-store')
        .redirect(start.location, 302)
    },
  )

  app.get(
    '/:provider/callback',
    {
      config: { auth: { public: true } },
      schema: {
        summary: 'Sign in with a provider (the provider’s redirect back)',
        description:
          'Checks `state` against the login cookie, exchanges the code, validates the ID token ' +
          'and signs the user in (created on the first sign-in), then redirects to the front ' +
          'end with a one-time code. Failures answer a problem document and are audited.',
        tags,
        params: ProviderParamsSchema,
        querystring: CallbackQuerySchema,
        response: { 302: RedirectSchema, ...problemResponses(400, 401, 403, 404, 409, 422, 502) },
      },
    },
    async (request, reply) => {
      const path = callbackPath(request.params.provider)
      // Used once, whatever the outcome: a retry must start a new sign-in.
      reply.clearCookie(LOGIN_COOKIE, { path })
      const location = await oidc.finishLogin(
        request.params.provider,
        request.query,
        request.cookies[LOGIN_COOKIE],
        actorOf(request),
      )
      return reply.header('cache-control', 'no-store').redirect(location, 302)
    },
  )

  app.get(
    '/:provider/logout',
    {
      config: { auth: { public: true } },
      schema: {
        summary: 'Sign out at the provider too (RP-initiated logout)',
        description:
          'Redirects to the provider’s end-session endpoint. Revoke the refresh token first ' +
          '(`POST /v1/auth/revoke`): this ends the session at the provider, not here.',
        tags,
        params: ProviderParamsSchema,
        querystring: LogoutQuerySchema,
        response: { 302: RedirectSchema, ...problemResponses(400, 404, 422, 502) },
      },
    },
    async (request, reply) =>
      reply.redirect(
        await oidc.logoutUrl(request.params.provider, request.query.post_logout_redirect_uri),
        302,
      ),
  )
}
