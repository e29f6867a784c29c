import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { createBroadcast } from '../../../shared/broadcast.js'
import type { ManagedModelServer } from './model-server.js'

const CHANNEL = 'orderflow:models:changed'

export interface ModelEvent {
  event: 'activated' | 'removed'
  name: string
  version: string
}

function parse(message: string): ModelEvent | undefined {
  try {
    const event = JSON.parse(message) as Partial<ModelEvent>
    const known = event.event === 'activated' || event.event === 'removed'
    if (known && typeof event.name === 'string' && typeof event.version === 'string') {
      return event as ModelEvent
    }
  } catch {}
  return undefined
}

/**
 * Carries activations and deletions to every instance over Redis pub/sub; each loads the new
 * version before switching to it, so no instance fails a request over a swap. The instance
 * that made the change has applied it already and ignores its own echo (activating the
 * active version does nothing). A missed message (Redis away) leaves an instance on the
 * previous version until it restarts: /v1/models shows which version is active.
 */
export function createModelEvents(
  redis: Redis | null,
  server: Pick<ManagedModelServer, 'activate' | 'forget'>,
  log: FastifyBaseLogger,
) {
  const broadcast = createBroadcast(
    redis,
    CHANNEL,
    (message) => {
      const event = parse(message)
      if (!event) {
        log.warn({ channel: CHANNEL }, 'ignored a malformed model event')
        return
      }
      const apply =
        event.event === 'activated'
          ? server.activate(event.name, event.version)
          : server.forget(event.name, event.version)
      apply.catch((error: unknown) => {
        log.error({ err: error, ...event }, 'could not apply a model change from another instance')
      })
    },
    log,
  )
  return {
    publish: (event: ModelEvent) => broadcast.publish(JSON.stringify(event)),
    close: () => broadcast.close(),
  }
}
