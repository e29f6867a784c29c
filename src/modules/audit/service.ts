import type { AuditEventRow } from '../../db/schema/index.js'
import { ValidationFailed } from '../../shared/errors.js'
import { type Page, pageOf, toPage } from '../../shared/schemas.js'
import type { AuditRepository } from './repository.js'
import type { AuditEvent, AuditListQuery } from './schemas.js'

function toAuditEvent(row: AuditEventRow): AuditEvent {
  return {
    id: row.id,
    at: row.at.toISOString(),
    actor: { user_id: row.actorUserId, api_key_id: row.actorApiKeyId },
    action: row.action as AuditEvent['action'],
    resource_type: row.resourceType as AuditEvent['resource_type'],
    resource_id: row.resourceId,
    changes: row.changes,
    request_id: row.requestId,
    client_address: row.clientAddress,
  }
}

export function createAuditService({ events }: { events: AuditRepository }) {
  return {
    async list(query: AuditListQuery): Promise<Page<AuditEvent>> {
      const from = query.from === undefined ? undefined : new Date(query.from)
      const to = query.to === undefined ? undefined : new Date(query.to)
      if (from && to && from > to) {
        throw new ValidationFailed([{ path: 'query.from', message: 'must not be after to' }])
      }
      const { rows, total } = await events.list({
        actor: query.actor,
        action: query.action,
        resourceType: query.resource_type,
        resourceId: query.resource_id,
        from,
        to,
        ...pageOf(query),
      })
      return toPage(rows.map(toAuditEvent), total, query)
    },
  }
}

export type AuditService = ReturnType<typeof createAuditService>
