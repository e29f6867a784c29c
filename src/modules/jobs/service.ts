import type { InTransaction } from '../../db/client.js'
import type { JobRow } from '../../db/schema/index.js'
import { type Caller, canSee, ownerScope } from '../../shared/caller.js'
import { pageOf, toPage } from '../../shared/schemas.js'
import type { JobType } from './contract.js'
import { JobFinished, JobNotFound, JobTypeNotAvailable } from './errors.js'
import type { JobEventBus } from './events.js'
import type { JobHandlerRegistry } from './handlers.js'
import type { JobEvent, JobRepository, NewJob } from './repository.js'
import type { Job, JobCreate, JobListQuery, JobPage } from './schemas.js'

export interface JobServiceDeps {
  jobs: JobRepository
  inTransaction: InTransaction
  registry: JobHandlerRegistry
  bus: JobEventBus
  /** Called after a commit that queued a job, so it is picked without waiting for a poll. */
  queued: () => void
  /** How often a stream re-reads its job's events when no notice arrived (a lost notice). */
  eventsPollMs: number
}

export function toJob(row: JobRow): Job {
  return {
    id: row.id,
    type: row.type,
    status: row.status,
    progress: row.progress,
    progress_message: row.progressMessage,
    params: row.params,
    result: row.result ?? null,
    error: row.error ?? null,
    attempts: row.attempts,
    max_attempts: row.maxAttempts,
    owner_id: row.ownerId,
    request_id: row.requestId,
    cancel_requested: row.cancelRequestedAt !== null,
    created_at: row.createdAt.toISOString(),
    started_at: row.startedAt?.toISOString() ?? null,
    finished_at: row.finishedAt?.toISOString() ?? null,
    updated_at: row.updatedAt.toISOString(),
  }
}

const FINISHED = new Set(['succeeded', 'failed', 'cancelled'])

/** True for an event after which a job's stream has nothing more to say. */
export const isFinalEvent = (event: JobEvent) =>
  event.kind === 'status' && FINISHED.has(String(event.data.status))

export function createJobService(deps: JobServiceDeps) {
  const { jobs, inTransaction, registry, bus, queued, eventsPollMs } = deps
  const notFound = (id: string) => new JobNotFound(`Job ${id} does not exist.`)

  async function visible(caller: Caller, id: string): Promise<JobRow> {
    const row = await jobs.findById(id)
    if (!row || !row.ownerId || !canSee(caller, row.ownerId)) {
      // Jobs without an owner (housekeeping) are visible to viewers and admins only.
      if (row && !row.ownerId && ownerScope(caller) === null) return row
      throw notFound(id)
    }
    return row
  }

  return {
    /** Starts a job on behalf of `caller` (only the types `JobCreateSchema` allows). */
    async create(caller: Caller, input: JobCreate, requestId: string): Promise<Job> {
      const registered = registry.get(input.type)
      if (!registered) {
        throw new JobTypeNotAvailable(`Jobs of type ${input.type} are not available here.`)
      }
      await registered.accept?.(input.params as never, caller)
      const row = await this.enqueue({
        type: input.type,
        params: input.params,
        owner_id: caller.userId,
        request_id: requestId,
        max_attempts: registered.maxAttempts,
      })
      return toJob(row)
    },

    /** Enqueues a job in its own transaction and nudges the queue. */
    async enqueue<T extends JobType>(job: NewJob<T>): Promise<JobRow> {
      const row = await inTransaction((tx) => jobs.enqueue(job, tx))
      queued()
      return row
    },

    async get(caller: Caller, id: string): Promise<Job> {
      return toJob(await visible(caller, id))
    },

    async list(caller: Caller, query: JobListQuery): Promise<JobPage> {
      const { limit, offset } = pageOf(query)
      const { items, total } = await jobs.list({
        ownerId: ownerScope(caller),
        status: query.status,
        type: query.type,
        limit,
        offset,
      })
      return toPage(items.map(toJob), total, query)
    },

    /** A queued job ends `cancelled` at once; a running one at its next checkpoint. */
    async cancel(caller: Caller, id: string): Promise<Job> {
      const row = await visible(caller, id)
      const changed = await jobs.requestCancel(row.id)
      if (!changed) {
        const current = await jobs.findById(row.id)
        throw new JobFinished(`Job ${id} has already ended (${current?.status}).`, {
          job_status: current?.status,
        })
      }
      if (changed.status === 'cancelled') bus.publish({ job_id: id, seq: changed.eventSeq })
      else bus.publish({ job_id: id, cancel: true })
      return toJob(changed)
    },

    /**
     * The job's events after `afterSeq`, then every new one as it is written, until the
     * job ends or `signal` aborts. Events are read from the table (never from the notices
     * themselves), so a resumed stream misses nothing and repeats nothing.
     */
    async *events(
      caller: Caller,
      id: string,
      afterSeq: number,
      signal: AbortSignal,
    ): AsyncGenerator<JobEvent> {
      await visible(caller, id)
      let last = afterSeq
      let wake: (() => void) | null = null
      let pending = true
      const nudge = () => {
        pending = true
        wake?.()
      }
      const unsubscribe = bus.subscribe(id, nudge)
      const poll = setInterval(nudge, eventsPollMs)
      signal.addEventListener('abort', nudge)
      try {
        while (!signal.aborted) {
          if (!pending) await new Promise<void>((resolve) => (wake = resolve))
          wake = null
          pending = false
          if (signal.aborted) return
          const batch = await jobs.eventsAfter(id, last)
          for (const event of batch) {
            last = event.seq
            yield event
            if (isFinalEvent(event)) return
          }
          // Resumed after the final event (or the job was purged): nothing more will come.
          if (batch.length === 0) {
            const row = await jobs.findById(id)
            if (!row || (row.finishedAt && last >= row.eventSeq)) return
          }
        }
      } finally {
        unsubscribe()
        clearInterval(poll)
        signal.removeEventListener('abort', nudge)
      }
    },
  }
}

export type JobService = ReturnType<typeof createJobService>
