import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type Caller, ROLES, type Role } from '../shared/caller.js'
import { Forbidden, Unauthenticated } from '../shared/errors.js'
import { problemResponses } from '../shared/schemas.js'
import { hooksOf } from './route-hooks.js'

/** What a request presented to prove who it is. */
export type Credentials = { kind: 'bearer'; token: string } | { kind: 'api_key'; key: string }

/** Resolves credentials to a caller, or throws `Unauthenticated`. */
export type Authenticate = (credentials: Credentials) => Promise<Caller>

/**
 * A route's access rule, in its `config.auth`:
 * - `{ public: true }`: no caller needed (registration, the token endpoint);
 * - `{ roles }`: a caller with one of these roles.
 * Without one, reads (GET/HEAD) are open to every role and writes to users and admins,
 * so a viewer can never write through a route that forgot to say so.
 */
export type RouteAuth = { public: true } | { roles: readonly Role[] }

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; null on public routes. */
    caller: Caller | null
  }
  interface FastifyContextConfig {
    auth?: RouteAuth
  }
}

export const SECURITY_SCHEMES = {
  OAuth2PasswordBearer: {
    type: 'oauth2',
    description: 'Log in with email and password at the token endpoint (Swagger UI: "Authorize").',
    flows: { password: { tokenUrl: '/v1/auth/token', scopes: {} } },
  },
  BearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
  ApiKeyAuth: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
} as const

export type SecuritySchemes = typeof SECURITY_SCHEMES & {
  SingleSignOn?: {
    type: 'oauth2'
    description: string
    flows: { authorizationCode: { authorizationUrl: string; tokenUrl: string; scopes: object } }
  }
}

/**
 * The schemes the OpenAPI document offers; with single sign-on, also the authorization
 * code flow through the service's own sign-in, so Swagger UI's "Authorize" can use it: the
 * service redirects to the provider and answers Swagger UI with a one-time code that the
 * token endpoint exchanges (grant_type=authorization_code, with Swagger UI's PKCE).
 */
export function securitySchemes(ssoLoginUrl: string | undefined): SecuritySchemes {
  if (!ssoLoginUrl) return SECURITY_SCHEMES
  return {
    ...SECURITY_SCHEMES,
    SingleSignOn: {
      type: 'oauth2',
      description: 'Sign in through the identity provider (Swagger UI: "Authorize").',
      flows: {
        authorizationCode: {
          authorizationUrl: ssoLoginUrl,
          tokenUrl: '/v1/auth/token',
          scopes: {},
        },
      },
    },
  }
}
const WRITERS: readonly Role[] = ['admin', 'user']
// The Open Inference Protocol's model routes sit beside /v1; its health probes stay public.
const PROTECTED_PREFIXES = ['/v1/', '/v2/models/']
// RFC 6750 §5.3: credentials in URLs end up in logs, histories and Referer headers.
const QUERY_CREDENTIALS = ['api_key', 'apikey', 'access_token', 'key', 'token']
// API keys read `ofk_<8 hex>_<secret>`; a JWT starts with `ey`, so the two never mix.
const API_KEY_PREFIX = 'ofk_'

function isProtected(url: string, auth: RouteAuth | undefined): boolean {
  return PROTECTED_PREFIXES.some((prefix) => url.startsWith(prefix)) && !(auth && 'public' in auth)
}

function allowedRoles(method: string, auth: RouteAuth | undefined): readonly Role[] {
  if (auth && 'roles' in auth) return auth.roles
  return method === 'GET' || method === 'HEAD' ? ROLES : WRITERS
}

/**
 * A browser's WebSocket cannot set headers, and a query string would leave the token in
 * logs, so a browser offers its credentials as a subprotocol: `bearer.<token>` or
 * `api-key.<key>`, beside the real one that the server selects (never the credential).
 */
function protocolCredentials(offered: string): Credentials | undefined {
  for (const protocol of offered.split(',')) {
    const value = protocol.trim()
    if (value.startsWith('bearer.') && value.length > 7)
      return { kind: 'bearer', token: value.slice(7) }
    if (value.startsWith('api-key.') && value.length > 8)
      return { kind: 'api_key', key: value.slice(8) }
  }
  return undefined
}

function readCredentials(request: FastifyRequest): Credentials {
  const query = request.query as Record<string, unknown> | undefined
  if (query && QUERY_CREDENTIALS.some((name) => name in query)) {
    throw new Unauthenticated('Credentials in the query string are refused; use a header.')
  }
  const offered = request.headers['sec-websocket-protocol']
  if (offered && request.headers.upgrade?.toLowerCase() === 'websocket') {
    const fromProtocol = protocolCredentials(offered)
    if (fromProtocol) return fromProtocol
  }
  const apiKey = request.headers['x-api-key']
  if (typeof apiKey === 'string' && apiKey.length > 0) return { kind: 'api_key', key: apiKey }
  const authorization = request.headers.authorization
  const match = authorization ? /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(authorization) : null
  // An API key sent as a bearer token, as OpenAI-compatible clients send theirs.
  if (match?.[1]?.startsWith(API_KEY_PREFIX)) return { kind: 'api_key', key: match[1] }
  if (match?.[1]) return { kind: 'bearer', token: match[1] }
  throw new Unauthenticated('This route needs a bearer token or an X-API-Key header.')
}

/** The subprotocol a WebSocket handshake answers with: the first offered that is no credential. */
export function webSocketProtocol(offered: Set<string>): string | false {
  for (const protocol of offered) {
    if (!protocol.startsWith('bearer.') && !protocol.startsWith('api-key.')) return protocol
  }
  return false
}

/**
 * Authentication and role checks for every route under /v1 and /v2/models, in one place, so a new route
 * is protected unless it says otherwise. Also documents each operation's security
 * requirement and its 401/403 answers in the OpenAPI document.
 */
export const auth = fp(
  async (
    app: FastifyInstance,
    options: { authenticate: Authenticate; schemes?: SecuritySchemes },
  ) => {
    app.decorateRequest('caller', null)
    const security = Object.keys(options.schemes ?? SECURITY_SCHEMES).map((name) => ({
      [name]: [],
    }))

    // One hook per protected route, holding the route's own auth settings.
    const authenticateFor = (auth: RouteAuth | undefined) =>
      async function authenticate(request: FastifyRequest, reply: FastifyReply) {
        try {
          request.caller = await options.authenticate(readCredentials(request))
        } catch (error) {
          if (error instanceof Unauthenticated) await app.countAuthFailure(request, reply)
          throw error
        }
        if (!allowedRoles(request.method, auth).includes(request.caller.role)) {
          throw new Forbidden(`The ${request.caller.role} role may not do this.`)
        }
      }

    // Whether a route is protected is known when it is added: the check is attached to
    // those routes only, first among their own hooks, so the probes, metrics and docs pay no
    // authentication hook (an asynchronous one, a promise a request) on every request.
    app.addHook('onRoute', (route) => {
      if (!isProtected(route.url, route.config?.auth)) return
      const schema = route.schema ?? {}
      route.schema = {
        ...schema,
        security,
        response: { ...problemResponses(401, 403, 429), ...(schema.response as object) },
      }
      route.onRequest = [authenticateFor(route.config?.auth), ...hooksOf(route.onRequest)]
    })
  },
  { name: 'auth', dependencies: ['rate-limits'] },
)

/** The caller of a protected route; the auth hook has already refused anonymous requests. */
export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) throw new Unauthenticated('This route needs a caller.')
  return request.caller
}
