import { sql } from 'drizzle-orm'
import { jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core'

/** Before and after of each changed field; secrets are never recorded. */
export type AuditChanges = Record<string, { before?: unknown; after?: unknown }>

/** Mirrors migrations/006.do.audit.sql. Insert-only by design. */
export const auditEvents = pgTable('audit_events', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  at: timestamp('at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  actorUserId: uuid('actor_user_id'),
  actorApiKeyId: uuid('actor_api_key_id'),
  action: text('action').notNull(),
  resourceType: text('resource_type').notNull(),
  resourceId: text('resource_id').notNull(),
  changes: jsonb('changes').$type<AuditChanges>().notNull().default({}),
  requestId: text('request_id'),
  clientAddress: text('client_address'),
})

export type AuditEventRow = typeof auditEvents.$inferSelect
export type NewAuditEventRow = typeof auditEvents.$inferInsert
