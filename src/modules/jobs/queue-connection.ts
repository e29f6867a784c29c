import { Redis } from 'ioredis'

/**
 * A connection as BullMQ needs one: no per-command retry limit and no command timeout, since
 * its workers wait in blocking commands. Separate from the app's Redis client, whose short
 * timeouts suit request paths. Apart from `queue.ts` so that a process can hold (and ping)
 * the queue's connection without importing BullMQ.
 */
export function queueConnection(url: string): Redis {
  const connection = new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: false })
  connection.on('error', () => {}) // reconnects by itself; readiness reports the outage
  return connection
}
