import { sql } from 'drizzle-orm'
import { bigint, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import { users } from '../../db/schema/users.js'
import type { DatasetColumn } from './columns.js'
import type { BadLine, DatasetFormat } from './readers.js'

export const DATASET_STATUSES = ['importing', 'ready', 'failed'] as const
export type DatasetStatus = (typeof DATASET_STATUSES)[number]

/** How the file was read, and the lines an `on_error=skip` import left out. */
export interface DatasetImportInfo {
  delimiter?: string
  encoding?: string
  on_error?: 'fail' | 'skip'
  skipped_count?: number
  skipped_lines?: BadLine[]
}

/** Why an import failed: the first bad lines, or a short reason. */
export interface DatasetError {
  code: string
  message: string
  bad_lines?: BadLine[]
  bad_line_count?: number
}

/** Mirrors migrations/010.do.datasets.sql. */
export const datasets = pgTable('datasets', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  ownerId: uuid('owner_id')
    .notNull()
    .references(() => users.id, { onDelete: 'cascade' }),
  name: text('name').notNull(),
  description: text('description'),
  format: text('format').$type<DatasetFormat>().notNull(),
  status: text('status').$type<DatasetStatus>().notNull(),
  columns: jsonb('columns').$type<DatasetColumn[]>().notNull().default([]),
  rowCount: bigint('row_count', { mode: 'number' }).notNull().default(0),
  sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
  sha256: text('sha256'),
  import: jsonb('import').$type<DatasetImportInfo>().notNull().default({}),
  error: jsonb('error').$type<DatasetError>(),
  jobId: uuid('job_id').unique('datasets_job_id_key'),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
})

export type DatasetRow = typeof datasets.$inferSelect
export type NewDatasetRow = typeof datasets.$inferInsert
