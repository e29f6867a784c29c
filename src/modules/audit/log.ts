import type { Executor } from '../../db/client.js'
import { type AuditChanges, auditEvents } from '../../db/schema/index.js'
import type { Actor } from './actor.js'

export const AUDIT_ACTIONS = [
  'create',
  'update',
  'delete',
  'status_change',
  'sign_in',
  'sign_in_failed',
  'token_refresh',
  'refresh_token_reused',
  'sign_out',
] as const
export type AuditAction = (typeof AUDIT_ACTIONS)[number]

export const AUDITED_RESOURCES = [
  'customer',
  'product',
  'order',
  'user',
  'api_key',
  'model',
  // A login: its id is the refresh-token family, which every refresh of it shares.
  'session',
  // A user's link to a single sign-on provider: `<provider>:<subject>`.
  'user_identity',
] as const
export type AuditedResource = (typeof AUDITED_RESOURCES)[number]

export interface AuditEntry {
  action: AuditAction
  resourceType: AuditedResource
  resourceId: string
  changes: AuditChanges
}

/**
 * Writes audit events. It takes the caller's transaction on purpose: an event is written
 * together with the change it describes, so a change that rolls back leaves no event and
 * a committed change always has one. An update that changed nothing records nothing.
 */
export async function recordAudit(tx: Executor, actor: Actor, entry: AuditEntry): Promise<void> {
  if (entry.action === 'update' && Object.keys(entry.changes).length === 0) return
  await auditInsert(tx, actor, entry)
}

/**
 * The insert of one audit event, not yet run: a repository embeds it in the statement that
 * makes the change it records (a data-modifying WITH), so the pair costs one round trip and
 * still commits or rolls back together. `recordAudit` is the one-statement form.
 */
export function auditInsert(tx: Executor, actor: Actor, entry: AuditEntry) {
  return tx.insert(auditEvents).values({
    actorUserId: actor.userId,
    actorApiKeyId: actor.apiKeyId,
    requestId: actor.requestId,
    clientAddress: actor.clientAddress,
    action: entry.action,
    resourceType: entry.resourceType,
    resourceId: entry.resourceId,
    changes: entry.changes,
  })
}
