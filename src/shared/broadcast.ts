import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'

export interface Broadcast {
  /**
   * Sends `message` to every instance, this one included. Resolves once Redis has handed it
   * to the subscribers (or failed to, which is logged): it never rejects.
   */
  publish(message: string): Promise<void>
  close(): Promise<void>
}

/**
 * Best-effort messages between API instances over Redis pub/sub. Without Redis (embedded
 * mode, one instance) publishing does nothing: the caller has already applied the change
 * locally. Callers must tolerate a missed message; each says what bounds the gap.
 */
export function createBroadcast(
  redis: Redis | null,
  channel: string,
  onMessage: (message: string) => void,
  log: FastifyBaseLogger,
): Broadcast {
  if (!redis) return { publish: async () => {}, close: async () => {} }
  // A subscribed connection can do nothing else: it gets its own. Unlike the main client it
  // queues the subscription until connected, and ioredis re-subscribes after reconnects. No
  // request waits on it, so a frozen Redis only delays the subscription: no command timeout.
  const subscriber = redis.duplicate({
    lazyConnect: false,
    enableOfflineQueue: true,
    commandTimeout: undefined,
  })
  subscriber.on('error', () => {}) // reconnects by itself
  subscriber.on('message', (received: string, message: string) => {
    if (received === channel) onMessage(message)
  })
  subscriber.subscribe(channel).catch((error: unknown) => {
    log.warn({ err: error, channel }, 'cannot subscribe; changes from other instances are missed')
  })
  return {
    async publish(message) {
      await redis.publish(channel, message).catch((error: unknown) => {
        log.warn({ err: error, channel }, 'could not announce a change to other instances')
      })
    },
    async close() {
      subscriber.disconnect()
    },
  }
}
