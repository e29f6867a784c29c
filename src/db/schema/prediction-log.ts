import { sql } from 'drizzle-orm'
import { doublePrecision, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core'

/** Mirrors migrations/011.do.prediction-log.sql. Insert-only. */
export const predictionLog = pgTable('prediction_log', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  model: text('model').notNull(),
  version: text('version').notNull(),
  inputs: jsonb('inputs').$type<Record<string, unknown>>().notNull(),
  output: jsonb('output').$type<Record<string, unknown>>().notNull(),
  latencyMs: doublePrecision('latency_ms').notNull(),
  requestId: text('request_id'),
  userId: uuid('user_id'),
  apiKeyId: uuid('api_key_id'),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull(),
})

export type PredictionLogRow = typeof predictionLog.$inferSelect
export type NewPredictionLogRow = typeof predictionLog.$inferInsert
