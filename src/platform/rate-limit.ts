import { createHash } from 'node:crypto'
import rateLimit, { type FastifyRateLimitStoreCtor, normalizeIP } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { ServiceUnavailable, TooManyRequests } from '../shared/errors.js'
import { RateCounters } from './rate-limit-counters.js'
import { hooksOf } from './route-hooks.js'

export interface RateLimitSettings {
  max: number
  windowMs: number
  /** The budget of routes in the `predict` group, kept apart from the general one. */
  predict: { max: number; windowMs: number }
  /** Server mode: counters shared by every instance. Embedded: in-process. */
  redis: Redis | null
  /** Server mode: the prefix of the counters' keys (REDIS_PREFIX). */
  redisPrefix: string
  /** Server mode: how often this instance's counts are reconciled with Redis. */
  syncIntervalMs: number
}

/**
 * The client address as a counter key. One IPv6 client holds a whole /64, so keying on the
 * full address would hand it 2^64 budgets; an IPv4-mapped address counts as the IPv4 one.
 */
const addressKey = (request: FastifyRequest) => normalizeIP(request.ip)

/**
 * The default limit for every /v1 route, keyed by the authenticated user or API key, else
 * the client address. It runs at preParsing: after the auth hook (onRequest), so the key is
 * never taken from an unverified claim, and before any body is read. In server mode it is
 * decided from this instance's counters, reconciled with Redis every `syncIntervalMs`
 * (`RateCounters`: no Redis round trip on the request). With Redis down it fails open (the
 * API stays up, each instance limiting alone); the login limit below fails closed.
 *
 * Requests refused by authentication never reach preParsing, so each authentication
 * failure is also counted per client address (`countAuthFailure`, a budget of the same
 * size): a flood of bad tokens or keys from one address is throttled too.
 */
export const rateLimits = fp(
  async (app: FastifyInstance, settings: RateLimitSettings) => {
    const counters =
      settings.redis &&
      new RateCounters({
        redis: settings.redis,
        namespace: `${settings.redisPrefix}:rate:`,
        syncIntervalMs: settings.syncIntervalMs,
        log: app.log,
      })
    // Before Redis is closed (registered earlier, so its onClose hook runs later).
    if (counters) app.addHook('onClose', () => counters.close())
    // Which routes the general limit covers is known when each is added, so routes outside
    // it get no limiter hook at all rather than one that asks, on every request, whether to
    // count it; the predict group's check goes onto the routes of that group only.
    app.addHook('onRoute', (route) => {
      const group = route.config?.rateLimitGroup
      // Probes, metrics and docs are for operators and load balancers, not clients. Judged by
      // the route's template, not the raw URL: the router decodes `/%761/...` to a /v1 route.
      if (!route.url.startsWith('/v1/') || group !== undefined) {
        route.config = { ...route.config, rateLimit: false }
      }
      if (group === 'predict') route.preParsing = [...hooksOf(route.preParsing), limitPredictions]
    })
    await app.register(rateLimit, {
      global: true,
      hook: 'preParsing',
      max: settings.max,
      timeWindow: settings.windowMs,
      // Without Redis, the plugin's in-process store.
      store: counters ? storeOf(counters) : undefined,
      skipOnError: true,
      enableDraftSpec: true,
      keyGenerator: callerKey,
      errorResponseBuilder: (_request, context) =>
        new TooManyRequests(`Too many requests; retry in ${context.after}.`),
    })

    const failures = app.createRateLimit({
      max: settings.max,
      timeWindow: settings.windowMs,
      skipOnError: true,
      allowList: [],
      keyGenerator: (request) => `auth-failure:${addressKey(request)}`,
    })
    // Predictions are the traffic a model-serving client sends most; they get their own budget
    // so a busy inference client neither starves nor is starved by its other calls.
    const predictions = app.createRateLimit({
      max: settings.predict.max,
      timeWindow: settings.predict.windowMs,
      skipOnError: true,
      allowList: [],
      keyGenerator: (request) => `predict:${callerKey(request)}`,
    })
    async function limitPredictions(request: FastifyRequest, reply: FastifyReply) {
      const result = await predictions(request)
      if (result.isAllowed) return
      setRateLimitHeaders(reply, result)
      if (!result.isExceeded) return
      reply.header('retry-after', result.ttlInSeconds)
      throw new TooManyRequests(`Too many predictions; retry in ${result.ttlInSeconds} s.`)
    }

    app.decorate('countAuthFailure', async (request: FastifyRequest, reply: FastifyReply) => {
      const result = await failures(request)
      if (result.isAllowed || !result.isExceeded) return
      reply.header('retry-after', result.ttlInSeconds)
      throw new TooManyRequests(`Too many requests; retry in ${result.ttlInSeconds} s.`)
    })
  },
  { name: 'rate-limits' },
)

/** @fastify/rate-limit constructs its store itself; this one hands it the counters made here. */
function storeOf(counters: RateCounters): FastifyRateLimitStoreCtor {
  return class {
    incr = counters.incr.bind(counters)
    child = counters.child.bind(counters)
  } as unknown as FastifyRateLimitStoreCtor
}

/** Who a budget belongs to: the authenticated user or API key, else the client address. */
function callerKey(request: FastifyRequest): string {
  const caller = request.caller
  if (!caller) return `ip:${addressKey(request)}`
  return caller.apiKeyId ? `key:${caller.apiKeyId}` : `user:${caller.userId}`
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A route in a group is counted against that group's budget instead of the general one. */
    rateLimitGroup?: 'predict'
  }
  interface FastifyInstance {
    /** Counts a failed authentication against the client address; throws 429 beyond the limit. */
    countAuthFailure(request: FastifyRequest, reply: FastifyReply): Promise<void>
  }
}

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
      // Never inherit the general limit's allow-list: no request escapes the login limits.
      allowList: [],
      keyGenerator: (request) => `login:${prefix}:${key(request)}`,
    })
  const byAddress = limiter('ip', addressKey)
  // Hashed: the key is client input of any length, and the store needs no email addresses.
  const byUsername = limiter('user', (request) =>
    createHash('sha256')
      .update(settings.username(request)?.trim().toLowerCase() ?? '')
      .digest('base64url'),
  )

  return async (request: FastifyRequest, reply: FastifyReply) => {
    const checks = settings.username(request) ? [byAddress, byUsername] : [byAddress]
    // The headers tell the client about the budget that runs out first.
    let tightest: { max: number; remaining: number; ttlInSeconds: number } | undefined
    for (const check of checks) {
      let result: Awaited<ReturnType<typeof check>>
      try {
        result = await check(request)
      } catch (error) {
        request.log.error({ err: error }, 'login rate limiter unavailable')
        throw new ServiceUnavailable('Logins are unavailable for a moment; try again shortly.')
      }
      if (result.isAllowed) continue
      if (result.isExceeded) {
        setRateLimitHeaders(reply, result)
        reply.header('retry-after', result.ttlInSeconds)
        throw new TooManyRequests(`Too many login attempts; retry in ${result.ttlInSeconds} s.`)
      }
      if (!tightest || result.remaining < tightest.remaining) tightest = result
    }
    if (tightest) setRateLimitHeaders(reply, tightest)
  }
}

function setRateLimitHeaders(
  reply: FastifyReply,
  budget: { max: number; remaining: number; ttlInSeconds: number },
) {
  reply.header('ratelimit-limit', budget.max)
  reply.header('ratelimit-remaining', budget.remaining)
  reply.header('ratelimit-reset', budget.ttlInSeconds)
}
