import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { ServiceUnavailable, TooManyRequests } from '../shared/errors.js'

export interface RateLimitSettings {
  max: number
  windowMs: number
  /** Server mode: counters shared by every instance. Embedded: in-process. */
  redis: Redis | null
}

/**
 * The default limit for every /v1 route, keyed by the authenticated user or API key, else
 * the client address. The auth hook runs first, so the key is never taken from an
 * unverified claim. With Redis down the general limit fails open (the API stays up, only
 * unthrottled); the login limit below fails closed.
 */
export const rateLimits = fp(
  async (app: FastifyInstance, settings: RateLimitSettings) => {
    await app.register(rateLimit, {
      global: true,
      max: settings.max,
      timeWindow: settings.windowMs,
      redis: settings.redis ?? undefined,
      nameSpace: 'orderflow:rate:',
      skipOnError: true,
      enableDraftSpec: true,
      // Probes, metrics and docs are for operators and load balancers, not clients.
      allowList: (request) => !request.url.startsWith('/v1/'),
      keyGenerator: (request) => {
        const caller = request.caller
        if (!caller) return `ip:${request.ip}`
        return caller.apiKeyId ? `key:${caller.apiKeyId}` : `user:${caller.userId}`
      },
      errorResponseBuilder: (_request, context) =>
        new TooManyRequests(`Too many requests; retry in ${context.after}.`),
    })
  },
  { name: 'rate-limits', dependencies: ['auth'] },
)

/**
 * The token endpoint's own limits, per client address and per username, checked before
 * any password is hashed. Fails closed: when the counter store is unreachable, logins are
 * refused with 503 rather than left open to guessing.
 */
export function loginThrottle(
  app: FastifyInstance,
  settings: {
    max: number
    windowMs: number
    username: (request: FastifyRequest) => string | undefined
  },
) {
  const limiter = (prefix: string, key: (request: FastifyRequest) => string) =>
    app.createRateLimit({
      max: settings.max,
      timeWindow: settings.windowMs,
      skipOnError: false,
      keyGenerator: (request) => `login:${prefix}:${key(request)}`,
    })
  const byAddress = limiter('ip', (request) => request.ip)
  const byUsername = limiter(
    'user',
    (request) => settings.username(request)?.trim().toLowerCase() ?? '',
  )

  return async (request: FastifyRequest, reply: FastifyReply) => {
    const checks = settings.username(request) ? [byAddress, byUsername] : [byAddress]
    for (const check of checks) {
      let result: Awaited<ReturnType<typeof check>>
      try {
        result = await check(request)
      } catch (error) {
        request.log.error({ err: error }, 'login rate limiter unavailable')
        throw new ServiceUnavailable('Logins are unavailable for a moment; try again shortly.')
      }
      if (result.isAllowed) continue
      reply.header('ratelimit-limit', result.max)
      reply.header('ratelimit-remaining', result.remaining)
      reply.header('ratelimit-reset', result.ttlInSeconds)
      if (result.isExceeded) {
        reply.header('retry-after', result.ttlInSeconds)
        throw new TooManyRequests(`Too many login attempts; retry in ${result.ttlInSeconds} s.`)
      }
    }
  }
}
