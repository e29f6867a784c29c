import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { createBroadcast } from '../../shared/broadcast.js'

export interface AuthStateEvents {
  /** Announces that a user's role, activity or credentials changed. */
  publish(userId: string): void
  close(): Promise<void>
}

/**
 * Carries "user changed" across API instances, so every instance drops its cached auth
 * state at once rather than when the entry expires. When Redis is away the cache TTL still
 * bounds how long a change takes to apply.
 */
export function createAuthStateEvents(
  redis: Redis | null,
  onChange: (userId: string) => void,
  log: FastifyBaseLogger,
  redisPrefix: string,
): AuthStateEvents {
  return createBroadcast(redis, `${redisPrefix}:auth:user-changed`, onChange, log)
}
