import { Queue } from 'bullmq'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { QUEUE_JOB_NAME, QUEUE_NAME } from './contract.js'
import { queueConnection } from './queue-connection.js'
import type { RelayedJob } from './repository.js'

export interface QueueSettings {
  redisUrl: string
  /** BullMQ's key prefix, so several deployments (or test runs) can share one Redis. */
  prefix: string
  retryBaseMs: number
}

/**
 * The BullMQ producer side: hands relayed jobs to the queue. Attempts and exponential backoff
 * are BullMQ's; the job id is the row's id, so adding the same job twice adds it once.
 * Closing it closes `connection` too.
 */
export function createQueueProducer(
  settings: QueueSettings,
  log: FastifyBaseLogger,
  connection: Redis = queueConnection(settings.redisUrl),
) {
  const queue = new Queue(QUEUE_NAME, { connection, prefix: settings.prefix })
  queue.on('error', (error) => log.warn({ err: error }, 'job queue error'))
  const deliver = async (rows: Pick<RelayedJob, 'id' | 'type' | 'maxAttempts'>[]) => {
    await queue.addBulk(
      rows.map((row) => ({
        name: QUEUE_JOB_NAME,
        data: { job_id: row.id, type: row.type },
        opts: {
          jobId: row.id,
          attempts: row.maxAttempts,
          backoff: { type: 'exponential', delay: settings.retryBaseMs },
          // The jobs table keeps the record; Redis keeps only what is in flight.
          removeOnComplete: true,
          removeOnFail: { age: 7 * 24 * 3600 },
        },
      })),
    )
  }
  return {
    queue,
    deliver,
    counts: () =>
      queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
    async close() {
      await queue.close()
      connection.disconnect()
    },
  }
}

export type QueueProducer = ReturnType<typeof createQueueProducer>

/**
 * Warns when Redis may evict keys: BullMQ's keys must never be evicted, or queued jobs
 * vanish (the jobs table still has them, but nothing would run them until re-relayed).
 */
export async function checkEvictionPolicy(
  redis: Redis,
  log: FastifyBaseLogger,
): Promise<string | null> {
  try {
    const answer = (await redis.call('CONFIG', 'GET', 'maxmemory-policy')) as string[]
    const policy = answer[1] ?? null
    if (policy && policy !== 'noeviction') {
      log.warn(
        { maxmemory_policy: policy },
        'Redis maxmemory-policy is not noeviction: queued jobs can be evicted under memory pressure; set maxmemory-policy noeviction',
      )
    }
    return policy
  } catch (error) {
    // Managed Redis services often refuse CONFIG; the operator has to check it there.
    log.warn({ err: error }, 'could not read Redis maxmemory-policy; make sure it is noeviction')
    return null
  }
}
