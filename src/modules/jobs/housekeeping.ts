import type { FastifyBaseLogger } from 'fastify'
import { lt } from 'drizzle-orm'
import type { Executor } from '../../db/client.js'
import { idempotencyKeys, refreshTokens } from '../../db/schema/index.js'
import type { JobHandler, JobHandlerRegistry } from './handlers.js'
import { enqueueJob, type JobRepository } from './repository.js'

export interface HousekeepingDeps {
  db: Executor
  jobs: Pick<JobRepository, 'finishedBefore' | 'remove'>
  registry: JobHandlerRegistry
  retentionDays: number
  now?: () => Date
}

/**
 * Purges what has expired: idempotency records past their TTL, refresh tokens past their
 * expiry, and jobs finished more than JOB_RETENTION_DAYS ago — their events with them, and
 * whatever their type's `cleanup` keeps outside the database (spooled uploads, exports).
 */
export function createHousekeepingHandler(deps: HousekeepingDeps): JobHandler<'housekeeping'> {
  const { db, jobs, registry, retentionDays, now = () => new Date() } = deps
  return async ({ progress }) => {
    const at = now()
    const keys = await db
      .delete(idempotencyKeys)
      .where(lt(idempotencyKeys.expiresAt, at))
      .returning({ key: idempotencyKeys.key })
    const tokens = await db
      .delete(refreshTokens)
      .where(lt(refreshTokens.expiresAt, at))
      .returning({ id: refreshTokens.id })
    await progress(0.3, 'expired idempotency keys and refresh tokens purged')
    const cutoff = new Date(at.getTime() - retentionDays * 86_400_000)
    let removed = 0
    let files = 0
    for (;;) {
      const batch = await jobs.finishedBefore(cutoff, 500)
      if (batch.length === 0) break
      for (const job of batch) {
        const cleanup = registry.get(job.type as never)?.cleanup
        if (cleanup) {
          await cleanup({ id: job.id, params: job.params as never, result: job.result as never })
          files++
        }
      }
      removed += await jobs.remove(batch.map((job) => job.id))
    }
    return {
      idempotency_keys: keys.length,
      refresh_tokens: tokens.length,
      jobs: removed,
      temporary_files: files,
    }
  }
}

/**
 * Starts a housekeeping job once per tick of `intervalMs` across every instance: each
 * instance's timer enqueues the tick's job under a key naming the tick, and the database's
 * unique key lets exactly one of them in, whichever instances and clocks are running.
 */
export function scheduleHousekeeping(deps: {
  db: Executor
  intervalMs: number
  log: FastifyBaseLogger
  enqueued?: () => void
  now?: () => number
}) {
  const { db, intervalMs, log, now = Date.now } = deps
  const tick = async () => {
    const slot = Math.floor(now() / intervalMs) * intervalMs
    try {
      await enqueueJob(db, {
        type: 'housekeeping',
        params: {},
        owner_id: null,
        dedupe_key: `housekeeping:${new Date(slot).toISOString()}`,
        max_attempts: 3,
      })
      deps.enqueued?.()
    } catch (error) {
      log.warn({ err: error }, 'could not schedule housekeeping')
    }
  }
  const timer = setInterval(() => void tick(), intervalMs)
  timer.unref()
  return {
    tick,
    stop: () => clearInterval(timer),
  }
}

