import { and, eq, gt, lte } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import { type LoginCodeRow, loginCodes } from '../../db/schema/index.js'

/** One-time codes that hand a finished single sign-on to the front end (stored hashed). */
export function createLoginCodeRepository(db: Database) {
  return {
    async insert(values: LoginCodeRow, tx: Executor = db): Promise<void> {
      await tx.insert(loginCodes).values(values)
    },

    /**
     * Takes the code out, if it exists and has not expired: one statement, so of two
     * requests redeeming the same code exactly one gets it.
     */
    async consume(
      codeHash: string,
      at: Date,
      tx: Executor = db,
    ): Promise<LoginCodeRow | undefined> {
      const [row] = await tx
        .delete(loginCodes)
        .where(and(eq(loginCodes.codeHash, codeHash), gt(loginCodes.expiresAt, at)))
        .returning()
      return row
    },

    /** Drops codes nobody redeemed; called with each new code, so the table stays small. */
    async deleteExpired(at: Date, tx: Executor = db): Promise<void> {
      await tx.delete(loginCodes).where(lte(loginCodes.expiresAt, at))
    },
  }
}

export type LoginCodeRepository = ReturnType<typeof createLoginCodeRepository>
