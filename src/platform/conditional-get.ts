import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onSendHookHandler,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'
import { Type } from 'typebox'
import type { Tagged } from './read-cache.js'
import { hooksOf } from './route-hooks.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route answers with an ETag (through `sendTagged`). */
    etag?: boolean
  }
}

/** The 304 answer and the ETag header, for the OpenAPI document of a conditional GET. */
export const NotModifiedSchema = Type.Null({
  description: 'Not Modified: the `If-None-Match` header names the current ETag; no body.',
})

export const IfNoneMatchSchema = Type.Object({
  'if-none-match': Type.Optional(
    Type.String({
      description:
        'ETags from earlier answers; when one is the current one the answer is 304 without a body.',
    }),
  ),
})

const opaque = (tag: string) => (tag.startsWith('W/') ? tag.slice(2) : tag)

/**
 * True when `header` (If-None-Match) names `etag`, compared weakly as RFC 9110 §13.1.2
 * requires for this header, or is `*`. ETags never contain commas (base64url), so the
 * list splits on them.
 */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false
  const wanted = opaque(etag)
  for (const entry of header.split(',')) {
    const candidate = entry.trim()
    if (candidate === '*' || opaque(candidate) === wanted) return true
  }
  return false
}

/** Answers a tagged resource: its ETag, and 304 without a body when the client holds it. */
export function sendTagged<T>(request: FastifyRequest, reply: FastifyReply, tagged: Tagged<T>) {
  reply.header('etag', tagged.etag)
  if (etagMatches(request.headers['if-none-match'], tagged.etag)) {
    return reply.code(304).send()
  }
  return reply.send(tagged.value)
}

/**
 * A strong ETag promises the same bytes, and a gzip body is not the bytes the ETag was
 * computed from: on a compressed answer it becomes weak (`W/"..."`), as nginx does.
 * If-None-Match compares weakly, so either form earns a 304. Added after @fastify/compress's
 * own hook on each route that sends ETags, so it sees the encoding chosen.
 */
const weakenWhenCompressed: onSendHookHandler = (_request, reply, payload, done) => {
  const etag = reply.getHeader('etag')
  if (typeof etag === 'string' && !etag.startsWith('W/') && reply.getHeader('content-encoding')) {
    reply.header('etag', `W/${etag}`)
  }
  done(null, payload)
}

const ETAG_HEADER = {
  etag: {
    type: 'string',
    description:
      'The strong validator of this body (weak, `W/"..."`, when the body is compressed); ' +
      'send it back in `If-None-Match` to be answered 304 while it is current.',
  },
}

/** The ETag on the 200 answer and, on a GET, `If-None-Match` and its 304, for the docs. */
function documentRoute(route: RouteOptions) {
  const schema = route.schema ?? {}
  const response = { ...(schema.response as Record<string, { headers?: object }>) }
  if (response[200])
    response[200] = { ...response[200], headers: { ...response[200].headers, ...ETAG_HEADER } }
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  if (!methods.includes('GET')) {
    route.schema = { ...schema, response }
    return
  }
  const headers = (schema.headers ?? {}) as { properties?: Record<string, unknown> }
  route.schema = {
    ...schema,
    headers: {
      ...headers,
      type: 'object',
      properties: { ...headers.properties, ...IfNoneMatchSchema.properties },
    },
    response: { ...response, 304: { ...NotModifiedSchema, headers: ETAG_HEADER } },
  }
}

export const conditionalGet = fp(
  async (app: FastifyInstance) => {
    app.addHook('onRoute', (route) => {
      if (!route.config?.etag) return
      documentRoute(route)
      route.onSend = [...hooksOf(route.onSend), weakenWhenCompressed]
    })
  },
  { name: 'conditional-get', dependencies: ['http-security'] },
)
