import { and, count, desc, eq, inArray, isNull, lt, type SQL, sql } from 'drizzle-orm'
import type { Executor } from '../../db/client.js'
import {
  FINISHED_JOB_STATUSES,
  type JobError,
  type JobEventRow,
  type JobRow,
  type JobStatus,
  jobEvents,
  jobs,
} from '../../db/schema/index.js'
import { type JobTraceContext, traceJobEnqueue } from '../../platform/tracing.js'
import type { JobParams, JobType } from './contract.js'

export type { JobRow }

export interface NewJob<T extends JobType> {
  type: T
  params: JobParams<T>
  owner_id: string | null
  request_id?: string | null
  /** One job per business event: a second enqueue with the same key returns the first job. */
  dedupe_key?: string | null
  /** Runs in all, retries included (default 3). */
  max_attempts?: number
}

/**
 * Inserts the job (status `queued`) in the caller's transaction; the relay hands it to the
 * queue after commit (transactional outbox). Returns the row for the 202 answer; with a
 * `dedupe_key` that was used before, the earlier job's row. The row keeps the caller's trace
 * context, which the job's run continues.
 */
export function enqueueJob<T extends JobType>(tx: Executor, job: NewJob<T>): Promise<JobRow> {
  return traceJobEnqueue(job.type, (traceContext) => insertJob(tx, job, traceContext))
}

async function insertJob<T extends JobType>(
  tx: Executor,
  job: NewJob<T>,
  traceContext: JobTraceContext,
): Promise<JobRow> {
  const values = {
    type: job.type,
    params: job.params,
    ownerId: job.owner_id,
    requestId: job.request_id ?? null,
    dedupeKey: job.dedupe_key ?? null,
    maxAttempts: job.max_attempts ?? 3,
    ...traceContext,
  }
  if (!values.dedupeKey) {
    const [row] = await tx.insert(jobs).values(values).returning()
    return row as JobRow
  }
  const [row] = await tx.insert(jobs).values(values).onConflictDoNothing().returning()
  if (row) return row
  const [existing] = await tx.select().from(jobs).where(eq(jobs.dedupeKey, values.dedupeKey))
  return existing as JobRow
}

/** What the outbox relay hands the queue of a job. */
export type RelayedJob = Pick<JobRow, 'id' | 'type' | 'maxAttempts' | 'traceparent' | 'tracestate'>

export interface JobFilter {
  /** Only this user's jobs; null for everyone's. */
  ownerId: string | null
  status?: JobStatus
  type?: string
}

export interface JobEvent {
  seq: number
  kind: 'progress' | 'status'
  data: Record<string, unknown>
}

/** What a state change writes: the row's new columns and the event that tells about it. */
interface Change {
  set: SQL
  where: SQL
  event: (row: string) => SQL
}

export function createJobRepository(db: Executor) {
  /**
   * Applies one change to a job and appends its event in one statement, so the row and its
   * event history never disagree, and numbers the event from the row's counter.
   */
  async function change(id: string, { set, where, event }: Change, tx?: Executor) {
    const result = await rowsOf(
      (tx ?? db).execute(sql`
      WITH changed AS (
        UPDATE jobs SET ${set}, event_seq = event_seq + 1, updated_at = now()
        WHERE id = ${id} AND ${where}
        RETURNING *
      ), appended AS (
        INSERT INTO job_events (job_id, seq, kind, data)
        SELECT id, event_seq, ${event('changed')} FROM changed
        RETURNING seq
      )
      SELECT changed.*, (SELECT seq FROM appended) AS appended_seq FROM changed`),
    )
    const [row] = result as Record<string, unknown>[]
    return row ? toJobRow(row) : null
  }

  const statusEvent = (row: string) =>
    sql.raw(`'status', jsonb_build_object('status', ${row}.status, 'progress', ${row}.progress,
      'message', ${row}.progress_message, 'attempts', ${row}.attempts,
      'result', ${row}.result, 'error', ${row}.error)`)

  return {
    enqueue: <T extends JobType>(job: NewJob<T>, tx?: Executor) => enqueueJob(tx ?? db, job),

    async findById(id: string, tx?: Executor): Promise<JobRow | null> {
      const [row] = await (tx ?? db).select().from(jobs).where(eq(jobs.id, id))
      return row ?? null
    },

    async list(filter: JobFilter & { limit: number; offset: number }) {
      const where = and(
        filter.ownerId ? eq(jobs.ownerId, filter.ownerId) : undefined,
        filter.status ? eq(jobs.status, filter.status) : undefined,
        filter.type ? eq(jobs.type, filter.type) : undefined,
      )
      const [items, [total]] = await Promise.all([
        db
          .select()
          .from(jobs)
          .where(where)
          .orderBy(desc(jobs.createdAt), desc(jobs.id))
          .limit(filter.limit)
          .offset(filter.offset),
        db.select({ value: count() }).from(jobs).where(where),
      ])
      return { items, total: total?.value ?? 0 }
    },

    /** Events after `afterSeq`, in order. */
    async eventsAfter(id: string, afterSeq: number): Promise<JobEvent[]> {
      const rows: JobEventRow[] = await db
        .select()
        .from(jobEvents)
        .where(and(eq(jobEvents.jobId, id), sql`${jobEvents.seq} > ${afterSeq}`))
        .orderBy(jobEvents.seq)
      return rows.map((row) => ({ seq: row.seq, kind: row.kind, data: row.data }))
    },

    /**
     * Hands committed outbox rows to `deliver` and marks them enqueued, all in one
     * transaction that holds the rows locked: another relay skips them, and a crash before
     * the commit leaves them for the next pass (delivery is idempotent on the job id).
     */
    async relayOutbox(
      limit: number,
      deliver: (rows: RelayedJob[]) => Promise<void>,
    ): Promise<number> {
      return db.transaction(async (tx) => {
        const claimed = await rowsOf(
          tx.execute(sql`
            SELECT id, type, max_attempts, traceparent, tracestate FROM jobs
            WHERE enqueued_at IS NULL ORDER BY created_at LIMIT ${limit}
            FOR UPDATE SKIP LOCKED`),
        )
        const rows = (claimed as Record<string, unknown>[]).map(
          (row): RelayedJob => ({
            id: row.id as string,
            type: row.type as string,
            maxAttempts: Number(row.max_attempts),
            traceparent: (row.traceparent as string | null) ?? null,
            tracestate: (row.tracestate as string | null) ?? null,
          }),
        )
        if (rows.length === 0) return 0
        await deliver(rows)
        await tx
          .update(jobs)
          .set({ enqueuedAt: sql`now()` })
          .where(
            inArray(
              jobs.id,
              rows.map((row) => row.id),
            ),
          )
        return rows.length
      })
    },

    /**
     * Takes a queued (or interrupted `running`) job for a run: counts the attempt and
     * records the start. Null when the job is finished, cancelled or gone, which a
     * redelivery after the end must not run again.
     */
    start: (id: string) =>
      change(id, {
        set: sql`status = 'running', attempts = attempts + 1, enqueued_at = coalesce(enqueued_at, now()),
          started_at = coalesce(started_at, now()), error = NULL`,
        where: sql`status IN ('queued', 'running') AND cancel_requested_at IS NULL`,
        event: statusEvent,
      }),

    /** The embedded runner's pick: the next due queued job, taken as `start` does. */
    async startNextDue(types: string[]): Promise<JobRow | null> {
      if (types.length === 0) return null
      const result = await rowsOf(
        db.execute(sql`
        SELECT id FROM jobs
        WHERE status = 'queued' AND run_after <= now()
          AND type IN (${sql.join(
            types.map((type) => sql`${type}`),
            sql`, `,
          )})
        ORDER BY run_after, created_at LIMIT 1`),
      )
      const [next] = result as { id: string }[]
      if (!next) return null
      return this.start(next.id)
    },

    /** Records progress that never moves backwards; returns whether a cancel was asked. */
    async progress(id: string, fraction: number, message: string | null) {
      const row = await change(id, {
        set: sql`progress = greatest(progress, ${fraction}), progress_message = ${message}`,
        where: sql`status = 'running'`,
        event: (r) =>
          sql.raw(`'progress', jsonb_build_object('progress', ${r}.progress,
            'message', ${r}.progress_message)`),
      })
      return { cancelRequested: row === null || row.cancelRequestedAt !== null, row }
    },

    succeed: (id: string, result: unknown) =>
      change(id, {
        set: sql`status = 'succeeded', progress = 1, result = ${JSON.stringify(result)}::jsonb,
          finished_at = now()`,
        where: sql`status = 'running'`,
        event: statusEvent,
      }),

    fail: (id: string, error: JobError) =>
      change(id, {
        set: sql`status = 'failed', error = ${JSON.stringify(error)}::jsonb, finished_at = now()`,
        where: sql`status IN ('queued', 'running')`,
        event: statusEvent,
      }),

    /** Back to the queue after a failed attempt, due again after `delayMs`. */
    retryLater: (id: string, error: JobError, delayMs: number) =>
      change(id, {
        set: sql`status = 'queued', error = ${JSON.stringify(error)}::jsonb,
          run_after = now() + ${delayMs} * interval '1 millisecond'`,
        where: sql`status = 'running'`,
        event: statusEvent,
      }),

    cancelled: (id: string) =>
      change(id, {
        set: sql`status = 'cancelled', finished_at = now()`,
        where: sql`status IN ('queued', 'running')`,
        event: statusEvent,
      }),

    /**
     * A cancel request: a queued job ends `cancelled` at once; a running one is flagged
     * and stops at its next checkpoint. Null when the job is already finished.
     */
    async requestCancel(id: string): Promise<JobRow | null> {
      const queued = await change(id, {
        set: sql`status = 'cancelled', cancel_requested_at = now(), finished_at = now()`,
        where: sql`status = 'queued'`,
        event: statusEvent,
      })
      if (queued) return queued
      const [running] = await db
        .update(jobs)
        .set({ cancelRequestedAt: sql`coalesce(${jobs.cancelRequestedAt}, now())` })
        .where(and(eq(jobs.id, id), eq(jobs.status, 'running')))
        .returning()
      return running ?? null
    },

    /** Jobs a previous run of this process left `running`: due again now. */
    async requeueInterrupted(): Promise<number> {
      const rows = await db
        .update(jobs)
        .set({ status: 'queued', runAfter: sql`now()` })
        .where(eq(jobs.status, 'running'))
        .returning({ id: jobs.id })
      return rows.length
    },

    async countByStatus(): Promise<Record<string, number>> {
      const rows = await db
        .select({ status: jobs.status, value: count() })
        .from(jobs)
        .groupBy(jobs.status)
      return Object.fromEntries(rows.map((row) => [row.status, row.value]))
    },

    /** Finished jobs older than the cutoff, oldest first. */
    finishedBefore(cutoff: Date, limit: number) {
      return db
        .select()
        .from(jobs)
        .where(
          and(
            inArray(jobs.status, [...FINISHED_JOB_STATUSES]),
            lt(jobs.finishedAt, cutoff),
            isNull(jobs.dedupeKey),
          ),
        )
        .orderBy(jobs.finishedAt)
        .limit(limit)
    },

    async remove(ids: string[]) {
      if (ids.length === 0) return 0
      const rows = await db.delete(jobs).where(inArray(jobs.id, ids)).returning({ id: jobs.id })
      return rows.length
    },
  }
}

export type JobRepository = ReturnType<typeof createJobRepository>

/** The rows of a raw statement, which both drivers answer as `{ rows }`. */
async function rowsOf(query: Promise<unknown>): Promise<unknown[]> {
  return ((await query) as { rows: unknown[] }).rows
}

/** A raw `RETURNING *` row in the shape Drizzle's typed queries give. */
function toJobRow(row: Record<string, unknown>): JobRow {
  const date = (value: unknown) => (value == null ? null : new Date(value as string))
  const json = (value: unknown) => (typeof value === 'string' ? JSON.parse(value) : value)
  return {
    id: row.id as string,
    type: row.type as string,
    status: row.status as JobStatus,
    progress: Number(row.progress),
    progressMessage: (row.progress_message as string | null) ?? null,
    params: json(row.params),
    result: json(row.result) ?? null,
    error: json(row.error) ?? null,
    attempts: Number(row.attempts),
    maxAttempts: Number(row.max_attempts),
    ownerId: (row.owner_id as string | null) ?? null,
    requestId: (row.request_id as string | null) ?? null,
    dedupeKey: (row.dedupe_key as string | null) ?? null,
    enqueuedAt: date(row.enqueued_at),
    runAfter: date(row.run_after) as Date,
    cancelRequestedAt: date(row.cancel_requested_at),
    eventSeq: Number(row.event_seq),
    createdAt: date(row.created_at) as Date,
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
    updatedAt: date(row.updated_at) as Date,
    traceparent: (row.traceparent as string | null) ?? null,
    tracestate: (row.tracestate as string | null) ?? null,
  }
}
