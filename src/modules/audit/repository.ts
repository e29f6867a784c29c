import { and, count, desc, eq, gte, lte, or, type SQL } from 'drizzle-orm'
import type { Database } from '../../db/client.js'
import { type AuditEventRow, auditEvents } from '../../db/schema/index.js'

export interface AuditFilter {
  actor?: string
  action?: string
  resourceType?: string
  resourceId?: string
  from?: Date
  to?: Date
}

function whereClause(filter: AuditFilter): SQL | undefined {
  return and(
    filter.actor === undefined
      ? undefined
      : or(eq(auditEvents.actorUserId, filter.actor), eq(auditEvents.actorApiKeyId, filter.actor)),
    filter.action === undefined ? undefined : eq(auditEvents.action, filter.action),
    filter.resourceType === undefined
      ? undefined
      : eq(auditEvents.resourceType, filter.resourceType),
    filter.resourceId === undefined ? undefined : eq(auditEvents.resourceId, filter.resourceId),
    filter.from === undefined ? undefined : gte(auditEvents.at, filter.from),
    filter.to === undefined ? undefined : lte(auditEvents.at, filter.to),
  )
}

/** Reads only: events are written by `recordAudit` inside the change's own transaction. */
export function createAuditRepository(db: Database) {
  return {
    async list(
      filter: AuditFilter & { limit: number; offset: number },
    ): Promise<{ rows: AuditEventRow[]; total: number }> {
      const where = whereClause(filter)
      const [rows, [totals]] = await Promise.all([
        db
          .select()
          .from(auditEvents)
          .where(where)
          .orderBy(desc(auditEvents.at), desc(auditEvents.id))
          .limit(filter.limit)
          .offset(filter.offset),
        db.select({ total: count() }).from(auditEvents).where(where),
      ])
      return { rows, total: totals?.total ?? 0 }
    },
  }
}

export type AuditRepository = ReturnType<typeof createAuditRepository>
