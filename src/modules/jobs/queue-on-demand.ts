import type { FastifyBaseLogger } from 'fastify'
import type { QueueProducer, QueueSettings } from './queue.js'
import { queueConnection } from './queue-connection.js'

/**
 * Server mode's BullMQ producer, opened on its first need.
 *
 * BullMQ and what it brings (msgpackr, luxon, cron-parser) were about a third of a
 * server-mode start's module loading, and an API process needs them only to hand a committed
 * job to the queue. So `producer()` imports them, and builds the producer, the first time it
 * is called: by the relay's first delivery (a pass that finds nothing to relay delivers
 * nothing), or at start by the worker, which loads BullMQ for its own side anyway.
 *
 * The queue's Redis connection is opened at once (ioredis is loaded by server mode anyway),
 * so readiness keeps its meaning without BullMQ: the queue's own connection answers. A
 * failed opening stays failed, as an eager one did: every later use, readiness included,
 * sees the error until the process is replaced.
 */
export function createQueueOnDemand(settings: QueueSettings, log: FastifyBaseLogger) {
  const connection = queueConnection(settings.redisUrl)
  let opening: Promise<QueueProducer> | null = null
  let failure: unknown = null
  let closed = false

  function producer(): Promise<QueueProducer> {
    if (closed) return Promise.reject(new Error('the job queue is closed'))
    if (!opening) {
      opening = import('./queue.js').then(({ createQueueProducer }) =>
        createQueueProducer(settings, log, connection),
      )
      // Each use awaits it and sees a failure there; readiness sees it here.
      opening.catch((error: unknown) => {
        failure = error
      })
    }
    return opening
  }

  return {
    producer,
    /**
     * Ready when the queue's connection answers and the producer has not failed to open. An
     * opening under way is not waited for: importing BullMQ takes longer than readiness's
     * timeout, and the first job must not turn the instance unready.
     */
    async ping(): Promise<void> {
      if (failure) throw failure
      await connection.ping()
    },
    /**
     * The queue's counts by state; null until this process has opened the queue, as
     * opening it for a scrape would load BullMQ in every API process.
     */
    async counts(): Promise<Record<string, number> | null> {
      return opening ? (await opening).counts() : null
    },
    /** Works whether the queue was never opened, is opening, opened or failed to open. */
    async close(): Promise<void> {
      closed = true
      const opened = await opening?.catch(() => null)
      await opened?.close()
      // Still ours when the queue never opened; disconnecting twice is harmless.
      connection.disconnect()
    },
  }
}

export type QueueOnDemand = ReturnType<typeof createQueueOnDemand>
