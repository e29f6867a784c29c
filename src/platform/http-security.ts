import compress from '@fastify/compress'
import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { sendProblem } from './problem.js'

/** CORS from the configured allowlist, security headers, and response compression. */
export const httpSecurity = fp(
  async (
    app: FastifyInstance,
    options: { config: Pick<Config, 'corsOrigins' | 'TLS_TERMINATED'> },
  ) => {
    const { TLS_TERMINATED: https } = options.config
    await app.register(cors, {
      // An empty allowlist sends no CORS headers at all: browsers on other origins are refused.
      origin: options.config.corsOrigins.length > 0 ? options.config.corsOrigins : false,
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
    await app.register(helmet, {
      // Swagger UI needs its inline styles and data: images; everything else is same-origin.
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          imgSrc: ["'self'", 'data:', 'https:'],
          styleSrc: ["'self'", "'unsafe-inline'", 'https:'],
          scriptSrc: ["'self'"],
          // Over plain HTTP (a container reached by its name) these would send every asset of
          // the docs pages to an https:// that does not answer: only behind TLS.
          upgradeInsecureRequests: https ? [] : null,
        },
      },
      strictTransportSecurity: https,
    })
    // Responses only. Inflating request bodies would be an unbounded, unauthenticated cost
    // (a small gzip body expands past the body limit) that no client of this API needs.
    await app.register(compress, { threshold: 1024, globalDecompression: false })
    app.addHook('onRequest', async (request, reply) => {
      const encoding = request.headers['content-encoding']?.trim().toLowerCase()
      if (encoding && encoding !== 'identity') {
        reply.header('accept-encoding', 'identity') // RFC 9110 §12.5.3: what is accepted
        return sendProblem(request, reply, {
          status: 415,
          code: 'UNSUPPORTED_CONTENT_ENCODING',
          detail: 'Request bodies are read uncompressed only; send them without Content-Encoding.',
        })
      }
    })
  },
  { name: 'http-security' },
)
