import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { createBroadcast } from '../../shared/broadcast.js'

/**
 * A notice that something happened to a job: its event `seq` was written to `job_events`,
 * or a cancel was asked. Listeners read the events themselves from the table, which is the
 * record; a notice only wakes them up, so a lost one costs latency, never a gap.
 */
export type JobNotice = { job_id: string; seq: number } | { job_id: string; cancel: true }

export interface JobEventBus {
  publish(notice: JobNotice): void
  /** Calls `listener` with every notice about `jobId`; returns the unsubscribe function. */
  subscribe(jobId: string, listener: (notice: JobNotice) => void): () => void
  /** Every notice, whichever job: the runner watches cancels of the jobs it runs. */
  subscribeAll(listener: (notice: JobNotice) => void): () => void
  close(): Promise<void>
}

/**
 * Notices reach every instance over Redis pub/sub in server mode (a worker process writes
 * the event; the instance holding the client's stream hears of it), and stay in-process
 * without Redis.
 */
export function createJobEventBus(
  redis: Redis | null,
  channel: string,
  log: FastifyBaseLogger,
): JobEventBus {
  const local = new EventEmitter()
  local.setMaxListeners(0)
  const deliver = (notice: JobNotice) => {
    local.emit(notice.job_id, notice)
    local.emit('*', notice)
  }
  const broadcast = createBroadcast(
    redis,
    channel,
    (message) => {
      try {
        deliver(JSON.parse(message) as JobNotice)
      } catch {
        log.warn({ channel }, 'ignored a malformed job notice')
      }
    },
    log,
  )
  return {
    publish(notice) {
      // With Redis the message comes back to this instance too, through the subscription.
      if (redis) broadcast.publish(JSON.stringify(notice))
      else deliver(notice)
    },
    subscribe(jobId, listener) {
      local.on(jobId, listener)
      return () => local.off(jobId, listener)
    },
    subscribeAll(listener) {
      local.on('*', listener)
      return () => local.off('*', listener)
    },
    async close() {
      local.removeAllListeners()
      await broadcast.close()
    },
  }
}
