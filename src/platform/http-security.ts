import type { IncomingMessage, ServerResponse } from 'node:http'
import compress from '@fastify/compress'
import cors from '@fastify/cors'
import type { FastifyInstance, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'
import type { Config } from '../config.js'
import { sendProblem } from './problem.js'

/**
 * The security headers helmet would set, computed once. Our policy has no per-request part
 * (no nonces), yet helmet's middleware rebuilds the CSP string on every call: run it once
 * against a recording response and set the result on every reply.
 */
export function securityHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader: (name: string, value: string) => {
      headers[name.toLowerCase()] = value
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()]
    },
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (error) => {
    if (error) throw error
  })
  return headers
}

// Under the threshold, or for a client that sends no Accept-Encoding, a body leaves as is.
const COMPRESSION = { threshold: 1024 }
// Probes answer a few fixed bytes, many times a minute.
const UNCOMPRESSED_ROUTES = new Set(['/health', '/ready', '/v2/health/live', '/v2/health/ready'])

/**
 * Compression pays for large bodies only, and only reads return those (lists, documents,
 * the docs' assets); writes answer one resource or a problem. Other routes get no
 * compression hooks at all instead of hooks that look at every reply and pass it on.
 */
function compressesResponses(route: RouteOptions): boolean {
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  return methods.some((method) => method === 'GET') && !UNCOMPRESSED_ROUTES.has(route.url)
}

/** CORS from the configured allowlist, security headers, and response compression. */
export const httpSecurity = fp(
  async (
    app: FastifyInstance,
    options: { config: Pick<Config, 'corsOrigins' | 'TLS_TERMINATED'> },
  ) => {
    const { TLS_TERMINATED: https } = options.config
    // An empty allowlist sends no CORS headers at all: browsers on other origins are refused.
    // Then the plugin is not registered either: with `origin: false` its hook still ran on
    // every request (about 3 % of the CPU of `GET /health`) to add nothing, and its OPTIONS
    // route handed every preflight to the not-found handler, which answers one alone.
    if (options.config.corsOrigins.length > 0) {
      await app.register(cors, {
        origin: options.config.corsOrigins,
        credentials: false,
        exposedHeaders: [
          'X-Request-ID',
          'Location',
          'Retry-After',
          'RateLimit-Limit',
          'RateLimit-Remaining',
          'RateLimit-Reset',
          'Idempotent-Replayed',
        ],
        maxAge: 600,
      })
    }
    const headers = securityHeaders({
      // Same-origin only, nothing inline: the pages that need more (the API docs) set
      // their own policy on their routes.
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          fontSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          styleSrc: ["'self'"],
          scriptSrc: ["'self'"],
          // Over plain HTTP (a container reached by its name) these would send every asset of
          // the docs pages to an https:// that does not answer: only behind TLS.
          upgradeInsecureRequests: https ? [] : null,
        },
      },
      strictTransportSecurity: https,
    })
    // Added before @fastify/compress, whose own onRoute hook reads the setting this one makes.
    app.addHook('onRoute', (route) => {
      if (route.compress === undefined && compressesResponses(route)) route.compress = COMPRESSION
    })
    // Responses only. Inflating request bodies would be an unbounded, unauthenticated cost
    // (a small gzip body expands past the body limit) that no client of this API needs.
    await app.register(compress, { ...COMPRESSION, global: false, globalDecompression: false })
    app.addHook('onRequest', (request, reply, done) => {
      reply.headers(headers)
      const encoding = request.headers['content-encoding']?.trim().toLowerCase()
      if (encoding && encoding !== 'identity') {
        reply.header('accept-encoding', 'identity') // RFC 9110 §12.5.3: what is accepted
        sendProblem(request, reply, {
          status: 415,
          code: 'UNSUPPORTED_CONTENT_ENCODING',
          detail: 'Request bodies are read uncompressed only; send them without Content-Encoding.',
        })
        return
      }
      done()
    })
  },
  { name: 'http-security' },
)
