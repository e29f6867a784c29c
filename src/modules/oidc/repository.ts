import { and, eq } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import { type UserIdentityRow, userIdentities } from '../../db/schema/index.js'

export function createIdentityRepository(db: Database) {
  return {
    async find(
      provider: string,
      subject: string,
      tx: Executor = db,
    ): Promise<UserIdentityRow | undefined> {
      const [row] = await tx
        .select()
        .from(userIdentities)
        .where(and(eq(userIdentities.provider, provider), eq(userIdentities.subject, subject)))
      return row
    },

    async insert(
      values: { userId: string; provider: string; subject: string; email: string | null },
      tx: Executor = db,
    ): Promise<void> {
      await tx.insert(userIdentities).values({ ...values, lastLoginAt: new Date() })
    },

    async touch(id: string, email: string | null, at: Date, tx: Executor = db): Promise<void> {
      await tx
        .update(userIdentities)
        .set({ email, lastLoginAt: at })
        .where(eq(userIdentities.id, id))
    },
  }
}

export type IdentityRepository = ReturnType<typeof createIdentityRepository>
