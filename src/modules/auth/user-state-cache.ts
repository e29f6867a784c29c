import type { Role } from '../../shared/caller.js'

/** What authenticating a bearer token needs to know about its user, beyond the token. */
export interface UserAuthState {
  id: string
  role: Role
  isActive: boolean
  authVersion: number
}

export interface UserStateCacheOptions {
  /** How long a state may be served without reading the database; 0 disables the cache. */
  ttlMs: number
  maxEntries?: number
  now?: () => number
}

/**
 * A short-lived, per-process cache of users' auth state, so a bearer request does not pay
 * a database read on top of the work it came for. Changes reach it two ways: the process
 * that changes a user invalidates it at once (and tells the other instances, see
 * `auth-state-events.ts`); anything missed expires after `ttlMs`.
 *
 * A read that started before an invalidation never stores its result: the epoch moves on
 * every invalidation, so a state loaded just before a commit cannot outlive it.
 */
export function createUserStateCache({
  ttlMs,
  maxEntries = 10_000,
  now = Date.now,
}: UserStateCacheOptions) {
  const entries = new Map<string, { state: UserAuthState | undefined; expiresAt: number }>()
  let epoch = 0

  return {
    async get(
      userId: string,
      load: (userId: string) => Promise<UserAuthState | undefined>,
    ): Promise<UserAuthState | undefined> {
      if (ttlMs === 0) return load(userId)
      const hit = entries.get(userId)
      if (hit && hit.expiresAt > now()) return hit.state
      const readAt = epoch
      const state = await load(userId)
      if (readAt === epoch) {
        entries.delete(userId) // re-inserted last: Map order is the eviction order
        entries.set(userId, { state, expiresAt: now() + ttlMs })
        if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string)
      }
      return state
    },

    invalidate(userId: string): void {
      epoch++
      entries.delete(userId)
    },

    get size() {
      return entries.size
    },
  }
}

export type UserStateCache = ReturnType<typeof createUserStateCache>
