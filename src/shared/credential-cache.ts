export interface CredentialCacheOptions<T> {
  /** How long a value may be served without reading the database; 0 disables the cache. */
  ttlMs: number
  /** The user a cached value belongs to, so every value of a user can be dropped at once. */
  ownerOf: (value: T) => string
  maxEntries?: number
  now?: () => number
}

/**
 * A short-lived, per-process cache of what authenticating a request needs (a user's role
 * and credential version, an API key's owner), so a request does not pay a database read
 * on top of the work it came for. Changes reach it two ways: the process that changes a
 * user drops that user's entries at once (and tells the other instances, see
 * `modules/auth/auth-state-events.ts`); anything missed expires after `ttlMs`.
 *
 * A read that started before an invalidation never stores its result: the epoch moves on
 * every invalidation, so a value loaded just before a commit cannot outlive it.
 */
export function createCredentialCache<T>({
  ttlMs,
  ownerOf,
  maxEntries = 10_000,
  now = Date.now,
}: CredentialCacheOptions<T>) {
  const entries = new Map<string, { value: T | undefined; expiresAt: number }>()
  let epoch = 0

  return {
    async get(key: string, load: (key: string) => Promise<T | undefined>): Promise<T | undefined> {
      if (ttlMs === 0) return load(key)
      const hit = entries.get(key)
      if (hit && hit.expiresAt > now()) return hit.value
      const readAt = epoch
      const value = await load(key)
      if (readAt === epoch) {
        entries.delete(key) // re-inserted last: Map order is the eviction order
        entries.set(key, { value, expiresAt: now() + ttlMs })
        if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string)
      }
      return value
    },

    /** Drops every value of `userId` (and a cached "not found" under that key). */
    invalidateOwner(userId: string): void {
      epoch++
      entries.delete(userId)
      for (const [key, entry] of entries) {
        if (entry.value !== undefined && ownerOf(entry.value) === userId) entries.delete(key)
      }
    },

    get size() {
      return entries.size
    },
  }
}

export type CredentialCache<T> = ReturnType<typeof createCredentialCache<T>>
