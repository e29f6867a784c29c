import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'

const CHANNEL = 'orderflow:auth:user-changed'

export interface AuthStateEvents {
  /** Announces that a user's role, activity or credentials changed. */
  publish(userId: string): void
  close(): Promise<void>
}

/**
 * Carries "user changed" across API instances over Redis pub/sub, so every instance drops
 * its cached auth state at once rather than when the entry expires. Best effort by design:
 * when Redis is away the cache TTL still bounds how long a change takes to apply.
 */
export function createAuthStateEvents(
  redis: Redis | null,
  onChange: (userId: string) => void,
  log: FastifyBaseLogger,
): AuthStateEvents {
  if (!redis) return { publish: () => {}, close: async () => {} }
  // A subscribed connection can do nothing else: it gets its own. Unlike the main client it
  // queues the subscription until connected, and ioredis re-subscribes after reconnects.
  const subscriber = redis.duplicate({ lazyConnect: false, enableOfflineQueue: true })
  subscriber.on('error', () => {}) // reconnects by itself; the TTL covers the gap
  subscriber.on('message', (_channel: string, userId: string) => onChange(userId))
  subscriber.subscribe(CHANNEL).catch((error: unknown) => {
    log.warn({ err: error }, 'auth state events unavailable; relying on the cache TTL')
  })
  return {
    publish(userId) {
      redis.publish(CHANNEL, userId).catch((error: unknown) => {
        log.warn({ err: error, user_id: userId }, 'could not announce a user change')
      })
    },
    async close() {
      subscriber.disconnect()
    },
  }
}
