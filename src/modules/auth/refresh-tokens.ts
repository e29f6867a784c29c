import { randomUUID } from 'node:crypto'
import { and, eq, isNull } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import { type RefreshTokenRow, refreshTokens } from '../../db/schema/index.js'

export function createRefreshTokenRepository(db: Database) {
  return {
    async insert(
      values: { userId: string; familyId?: string; tokenHash: string; expiresAt: Date },
      tx: Executor = db,
    ): Promise<void> {
      await tx
        .insert(refreshTokens)
        .values({ ...values, familyId: values.familyId ?? randomUUID() })
    },

    /** Locks the token row, so two refreshes with the same token are decided one after the other. */
    async findForUpdate(tokenHash: string, tx: Executor): Promise<RefreshTokenRow | undefined> {
      const [row] = await tx
        .select()
        .from(refreshTokens)
        .where(eq(refreshTokens.tokenHash, tokenHash))
        .for('update')
      return row
    },

    async findByHash(tokenHash: string, tx: Executor = db): Promise<RefreshTokenRow | undefined> {
      const [row] = await tx
        .select()
        .from(refreshTokens)
        .where(eq(refreshTokens.tokenHash, tokenHash))
      return row
    },

    async markUsed(id: string, at: Date, tx: Executor): Promise<void> {
      await tx.update(refreshTokens).set({ usedAt: at }).where(eq(refreshTokens.id, id))
    },

    async revokeFamily(familyId: string, at: Date, tx: Executor = db): Promise<void> {
      await tx
        .update(refreshTokens)
        .set({ revokedAt: at })
        .where(and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt)))
    },
  }
}

export type RefreshTokenRepository = ReturnType<typeof createRefreshTokenRepository>
