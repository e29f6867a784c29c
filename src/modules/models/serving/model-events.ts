import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { createBroadcast } from '../../../shared/broadcast.js'
import type { ManagedModelServer } from './model-server.js'

export interface ModelEvent {
  event: 'activated' | 'removed'
  name: string
  version: string
}

/** On the wire: the event and the instance that sent it. */
interface Message extends ModelEvent {
  from: string
}

function parse(message: string): Message | undefined {
  try {
    const event = JSON.parse(message) as Partial<Message>
    const known = event.event === 'activated' || event.event === 'removed'
    if (
      known &&
      typeof event.name === 'string' &&
      typeof event.version === 'string' &&
      typeof event.from === 'string'
    ) {
      return event as Message
    }
  } catch {}
  return undefined
}

/**
 * Carries activations and deletions to every instance over Redis pub/sub; each loads the new
 * version before switching to it, so no instance fails a request over a swap. The instance
 * that made the change has applied it already and ignores its own echo, which could arrive
 * after a later change and undo it. A message missed while Redis was away is caught up by
 * the model server's periodic comparison with the database (MODELS_SYNC_INTERVAL_MS).
 */
export function createModelEvents(
  redis: Redis | null,
  server: Pick<ManagedModelServer, 'activate' | 'forget'>,
  log: FastifyBaseLogger,
  redisPrefix: string,
) {
  const instance = randomUUID()
  const channel = `${redisPrefix}:models:changed`
  const broadcast = createBroadcast(
    redis,
    channel,
    (message) => {
      const event = parse(message)
      if (!event) {
        log.warn({ channel }, 'ignored a malformed model event')
        return
      }
      if (event.from === instance) return
      const apply =
        event.event === 'activated'
          ? server.activate(event.name, event.version)
          : server.forget(event.name, event.version)
      apply.catch((error: unknown) => {
        const { event: change, name, version } = event
        log.error(
          { err: error, event: change, model: name, version },
          'could not apply a model change from another instance',
        )
      })
    },
    log,
  )
  return {
    publish: (event: ModelEvent) =>
      broadcast.publish(JSON.stringify({ ...event, from: instance } satisfies Message)),
    close: () => broadcast.close(),
  }
}
