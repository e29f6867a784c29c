import compress from '@fastify/compress'
import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'

/** CORS from the configured allowlist, security headers, and response compression. */
export const httpSecurity = fp(
  async (app: FastifyInstance, options: { config: Pick<Config, 'corsOrigins'> }) => {
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
        },
      },
    })
    await app.register(compress, { threshold: 1024 })
  },
  { name: 'http-security' },
)
