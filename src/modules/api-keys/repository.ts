import { and, asc, eq, gt, isNull, lt, or, type SQL } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import { type ApiKeyRow, apiKeys, users } from '../../db/schema/index.js'
import type { Role } from '../../shared/caller.js'

export interface ApiKeyOwner {
  keyId: string
  userId: string
  role: Role
  lastUsedAt: Date | null
  expiresAt: Date | null
}

function usable(now: Date): SQL | undefined {
  return and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)))
}

export function createApiKeyRepository(db: Database) {
  return {
    async insert(values: typeof apiKeys.$inferInsert, tx: Executor = db): Promise<ApiKeyRow> {
      const [row] = await tx.insert(apiKeys).values(values).returning()
      if (!row) throw new Error('INSERT ... RETURNING returned no row')
      return row
    },

    /** The live keys of one user, oldest first. */
    listByUser(userId: string, now: Date, tx: Executor = db): Promise<ApiKeyRow[]> {
      return tx
        .select()
        .from(apiKeys)
        .where(and(eq(apiKeys.userId, userId), usable(now)))
        .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id))
    },

    async revoke(id: string, userId: string, now: Date, tx: Executor = db): Promise<boolean> {
      const revoked = await tx
        .update(apiKeys)
        .set({ revokedAt: now })
        .where(and(eq(apiKeys.id, id), eq(apiKeys.userId, userId), isNull(apiKeys.revokedAt)))
        .returning({ id: apiKeys.id })
      return revoked.length > 0
    },

    /** The owner of a live key of an active user, found by the key's hash. */
    async findOwner(
      keyHash: string,
      now: Date,
      tx: Executor = db,
    ): Promise<ApiKeyOwner | undefined> {
      const [row] = await tx
        .select({
          keyId: apiKeys.id,
          userId: users.id,
          role: users.role,
          lastUsedAt: apiKeys.lastUsedAt,
          expiresAt: apiKeys.expiresAt,
        })
        .from(apiKeys)
        .innerJoin(users, eq(users.id, apiKeys.userId))
        .where(and(eq(apiKeys.keyHash, keyHash), usable(now), eq(users.isActive, true)))
      return row
    },

    /** Records use at most once per `granularity`, so reads do not each turn into a write. */
    async touch(id: string, now: Date, granularityMs: number, tx: Executor = db): Promise<void> {
      await tx
        .update(apiKeys)
        .set({ lastUsedAt: now })
        .where(
          and(
            eq(apiKeys.id, id),
            or(
              isNull(apiKeys.lastUsedAt),
              lt(apiKeys.lastUsedAt, new Date(now.getTime() - granularityMs)),
            ),
          ),
        )
    },
  }
}

export type ApiKeyRepository = ReturnType<typeof createApiKeyRepository>
