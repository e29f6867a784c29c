import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { type Caller, ROLES, type Role } from '../shared/caller.js'
import { Forbidden, Unauthenticated } from '../shared/errors.js'
import { problemResponses } from '../shared/schemas.js'

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

const SECURITY = Object.keys(SECURITY_SCHEMES).map((name) => ({ [name]: [] }))
const WRITERS: readonly Role[] = ['admin', 'user']
// The Open Inference Protocol's model routes sit beside /v1; its health probes stay public.
const PROTECTED_PREFIXES = ['/v1/', '/v2/models/']
// RFC 6750 §5.3: credentials in URLs end up in logs, histories and Referer headers.
const QUERY_CREDENTIALS = ['api_key', 'apikey', 'access_token', 'key', 'token']

function isProtected(url: string, auth: RouteAuth | undefined): boolean {
  return PROTECTED_PREFIXES.some((prefix) => url.startsWith(prefix)) && !(auth && 'public' in auth)
}

function allowedRoles(method: string, auth: RouteAuth | undefined): readonly Role[] {
  if (auth && 'roles' in auth) return auth.roles
  return method === 'GET' || method === 'HEAD' ? ROLES : WRITERS
}

function readCredentials(request: FastifyRequest): Credentials {
  const query = request.query as Record<string, unknown> | undefined
  if (query && QUERY_CREDENTIALS.some((name) => name in query)) {
    throw new Unauthenticated('Credentials in the query string are refused; use a header.')
  }
  const apiKey = request.headers['x-api-key']
  if (typeof apiKey === 'string' && apiKey.length > 0) return { kind: 'api_key', key: apiKey }
  const authorization = request.headers.authorization
  const match = authorization ? /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(authorization) : null
  if (match?.[1]) return { kind: 'bearer', token: match[1] }
  const token = webSocketToken(request.headers)
  if (token) return { kind: 'bearer', token }
  throw new Unauthenticated('This route needs a bearer token or an X-API-Key header.')
}

const BEARER_PROTOCOL = 'bearer.'

/**
 * The bearer token a browser's WebSocket handshake carries as a subprotocol
 * (`new WebSocket(url, ['orderflow.v1', 'bearer.' + token])`): browsers cannot set headers
 * there, and a token in the URL would end up in logs.
 */
function webSocketToken(headers: FastifyRequest['headers']): string | null {
  if (headers.upgrade?.toLowerCase() !== 'websocket') return null
  const offered = String(headers['sec-websocket-protocol'] ?? '').split(',')
  const entry = offered.map((protocol) => protocol.trim()).find((p) => p.startsWith(BEARER_PROTOCOL))
  const token = entry?.slice(BEARER_PROTOCOL.length)
  return token && /^[A-Za-z0-9._~+/=-]+$/.test(token) ? token : null
}

/** The subprotocol a WebSocket handshake answers with: the first offered that is no token. */
export function webSocketProtocol(offered: Set<string>): string | false {
  for (const protocol of offered) if (!protocol.startsWith(BEARER_PROTOCOL)) return protocol
  return false
}

/**
 * Authentication and role checks for every route under /v1 and /v2/models, in one place, so a new route
 * is protected unless it says otherwise. Also documents each operation's security
 * requirement and its 401/403 answers in the OpenAPI document.
 */
export const auth = fp(
  async (app: FastifyInstance, options: { authenticate: Authenticate }) => {
    app.decorateRequest('caller', null)

    app.addHook('onRoute', (route) => {
      if (!isProtected(route.url, route.config?.auth)) return
      const schema = route.schema ?? {}
      route.schema = {
        ...schema,
        security: SECURITY,
        response: { ...problemResponses(401, 403, 429), ...(schema.response as object) },
      }
    })

    app.addHook('onRequest', async (request, reply) => {
      const auth = request.routeOptions.config.auth
      if (!request.routeOptions.url || !isProtected(request.routeOptions.url, auth)) return
      try {
        request.caller = await options.authenticate(readCredentials(request))
      } catch (error) {
        if (error instanceof Unauthenticated) await app.countAuthFailure(request, reply)
        throw error
      }
      if (!allowedRoles(request.method, auth).includes(request.caller.role)) {
        throw new Forbidden(`The ${request.caller.role} role may not do this.`)
      }
    })
  },
  { name: 'auth', dependencies: ['rate-limits'] },
)

/** The caller of a protected route; the auth hook has already refused anonymous requests. */
export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) throw new Unauthenticated('This route needs a caller.')
  return request.caller
}
