export const ROLES = ['admin', 'user', 'viewer'] as const
export type Role = (typeof ROLES)[number]

/** Who is making a request: a user, directly (bearer token) or through one of their API keys. */
export interface Caller {
  userId: string
  role: Role
  apiKeyId: string | null
}

/**
 * The ownership rule every module shares: admins and viewers see every record, a user
 * only their own. Returns the owner id a query must be limited to, or null for "all".
 */
export function ownerScope(caller: Caller): string | null {
  return caller.role === 'user' ? caller.userId : null
}

/**
 * True when `caller` may see a record owned by `ownerId`. A record the caller may not see
 * must answer exactly like a missing one (404), so ids of others leak nothing.
 */
export function canSee(caller: Caller, ownerId: string): boolean {
  const scope = ownerScope(caller)
  return scope === null || scope === ownerId
}
