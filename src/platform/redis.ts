import type { FastifyBaseLogger } from 'fastify'
import { type Command, Redis, type RedisOptions, ReplyError } from 'ioredis'
import CircuitBreaker from 'opossum'

export interface RedisSettings {
  url: string
  /** A command unanswered after this long fails, as if Redis were unreachable. */
  commandTimeoutMs: number
  /** How long an open breaker fails commands at once before letting one through to Redis. */
  breakerResetMs: number
  connectTimeoutMs: number
}

/** The breaker's view of the connection, for the log and for tests. */
export type RedisBreakerState = 'closed' | 'open' | 'half-open'

/**
 * An ioredis client whose every command is bounded in time and passes a circuit breaker.
 *
 * A stopped Redis refuses connections and each command fails at once (the offline queue is
 * off), but a frozen one (a stalled host, SIGSTOP, a full network buffer) keeps the socket
 * open and never answers: without a timeout every request that touches Redis would hang
 * until the kernel gives up on the socket. `commandTimeout` turns that into an error after a
 * few hundred milliseconds, so each use applies its own rule for "Redis unreachable" (fail
 * open or closed, docs/SECURITY.md). The breaker then stops paying even that: once most
 * recent commands have failed it fails new ones at once, and every `breakerResetMs` lets one
 * through to see whether Redis is back.
 *
 * The breaker sits in `sendCommand`, the one door every command goes through (plain calls,
 * scripts defined with `defineCommand`, as @fastify/rate-limit's store uses, and PING), so no
 * caller has to remember it. Commands ioredis itself sends while (re)connecting bypass it:
 * the connection must be free to recover on its own.
 */
export class GuardedRedis extends Redis {
  readonly breaker: CircuitBreaker<[Command], unknown>

  constructor(url: string, options: RedisOptions, breakerResetMs: number) {
    super(url, options)
    const send = (command: Command) => {
      super.sendCommand(command)
      return command.promise
    }
    this.breaker = new CircuitBreaker(send, {
      // ioredis' commandTimeout bounds each command; a second timer here would only race it.
      timeout: false,
      resetTimeout: breakerResetMs,
      // Judged over the last 10 s, once there are at least 5 commands to judge.
      rollingCountTimeout: 10_000,
      volumeThreshold: 5,
      errorThresholdPercentage: 50,
      // A reply error (wrong type, a script error) is an answer: Redis is there.
      errorFilter: (error: unknown) => error instanceof ReplyError,
    })
  }

  override sendCommand(command: Command, stream?: Parameters<Redis['sendCommand']>[1]) {
    if (stream || this.status !== 'ready') return super.sendCommand(command, stream)
    this.breaker.fire(command).catch((error: unknown) => command.reject(error as Error))
    return command.promise
  }

  breakerState(): RedisBreakerState {
    if (this.breaker.opened) return 'open'
    return this.breaker.halfOpen ? 'half-open' : 'closed'
  }
}

/**
 * The server-mode Redis client: connects in the background (the API starts, and `/ready`
 * reports Redis, when it is away) and reconnects by itself.
 */
export function connectRedis(settings: RedisSettings, log: FastifyBaseLogger): GuardedRedis {
  const redis = new GuardedRedis(
    settings.url,
    {
      lazyConnect: true,
      // Fail commands at once while Redis is away instead of queueing them behind requests.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: settings.connectTimeoutMs,
      commandTimeout: settings.commandTimeoutMs,
    },
    settings.breakerResetMs,
  )
  redis.on('error', () => {}) // reconnects by itself; /ready reports the outage
  redis.breaker.on('open', () => log.warn('Redis is failing; skipping it until it answers again'))
  redis.breaker.on('close', () => log.info('Redis answers again'))
  redis.connect().catch(() => {})
  return redis
}
