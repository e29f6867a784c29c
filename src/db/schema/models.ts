import { sql } from 'drizzle-orm'
import {
  customType,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from 'drizzle-orm/pg-core'
import type { ModelCard } from '../../modules/models/card.js'
import { users } from './users.js'

/**
 * PostgreSQL `bytea` as a `Uint8Array` (Drizzle has no built-in type for it). node-postgres
 * answers with a Buffer and PGlite with a Uint8Array; both are handed on as they come,
 * since a Buffer is a Uint8Array.
 */
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  toDriver: (value) =>
    Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength),
})

/** Mirrors migrations/007.do.models.sql. */
export const models = pgTable('models', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  name: text('name').notNull().unique('models_name_key'),
  task: text('task').$type<ModelCard['task']>().notNull(),
  activeVersion: text('active_version'),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
})

export const modelVersions = pgTable(
  'model_versions',
  {
    modelId: uuid('model_id')
      .notNull()
      .references(() => models.id, { onDelete: 'cascade' }),
    version: text('version').notNull(),
    card: jsonb('card').$type<ModelCard>().notNull(),
    onnx: bytea('onnx').notNull(),
    onnxSha256: text('onnx_sha256').notNull(),
    sizeBytes: integer('size_bytes').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
  },
  (table) => [primaryKey({ name: 'model_versions_pkey', columns: [table.modelId, table.version] })],
)

export type ModelRow = typeof models.$inferSelect
export type NewModelRow = typeof models.$inferInsert
export type ModelVersionRow = typeof modelVersions.$inferSelect
export type NewModelVersionRow = typeof modelVersions.$inferInsert
