import { sql } from 'drizzle-orm'
import {
  doublePrecision,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from 'drizzle-orm/pg-core'
import { users } from './users.js'

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const
export type JobStatus = (typeof JOB_STATUSES)[number]
/** Statuses a job never leaves. */
export const FINISHED_JOB_STATUSES = ['succeeded', 'failed', 'cancelled'] as const

const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })

/** Mirrors migrations/009.do.jobs.sql and 016.do.job-trace-context.sql. */
export const jobs = pgTable('jobs', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  type: text('type').notNull(),
  status: text('status').$type<JobStatus>().notNull().default('queued'),
  progress: doublePrecision('progress').notNull().default(0),
  progressMessage: text('progress_message'),
  params: jsonb('params').$type<unknown>().notNull(),
  result: jsonb('result').$type<unknown>(),
  error: jsonb('error').$type<JobError>(),
  attempts: integer('attempts').notNull().default(0),
  maxAttempts: integer('max_attempts').notNull().default(3),
  ownerId: uuid('owner_id').references(() => users.id, { onDelete: 'set null' }),
  requestId: text('request_id'),
  dedupeKey: text('dedupe_key'),
  enqueuedAt: at('enqueued_at'),
  runAfter: at('run_after').notNull().defaultNow(),
  cancelRequestedAt: at('cancel_requested_at'),
  eventSeq: integer('event_seq').notNull().default(0),
  createdAt: at('created_at').notNull().defaultNow(),
  startedAt: at('started_at'),
  finishedAt: at('finished_at'),
  updatedAt: at('updated_at').notNull().defaultNow(),
  traceparent: text('traceparent'),
  tracestate: text('tracestate'),
})

export interface JobError {
  code: string
  message: string
}

export type JobRow = typeof jobs.$inferSelect

export const jobEvents = pgTable(
  'job_events',
  {
    jobId: uuid('job_id')
      .notNull()
      .references(() => jobs.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    kind: text('kind').$type<'progress' | 'status'>().notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    createdAt: at('created_at').notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.jobId, table.seq] })],
)

export type JobEventRow = typeof jobEvents.$inferSelect

export const emailDeliveries = pgTable('email_deliveries', {
  eventKey: text('event_key').primaryKey(),
  messageId: text('message_id').notNull(),
  recipient: text('recipient').notNull(),
  template: text('template').notNull(),
  jobId: uuid('job_id').references(() => jobs.id, { onDelete: 'set null' }),
  sentAt: at('sent_at').notNull().defaultNow(),
})
