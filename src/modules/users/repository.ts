import { and, asc, count, desc, eq, ilike, isNull, or, type SQL, sql } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import {
  apiKeys,
  type NewUserRow,
  refreshTokens,
  type UserRow,
  users,
} from '../../db/schema/index.js'
import { containsPattern } from '../../db/search.js'
import type { Role } from '../../shared/caller.js'

export interface UserListOptions {
  role?: Role
  isActive?: boolean
  search?: string
  sort: 'email' | 'created_at'
  descending: boolean
  limit: number
  offset: number
}

export function createUserRepository(db: Database) {
  return {
    async insert(values: NewUserRow, tx: Executor = db): Promise<UserRow> {
      const [row] = await tx.insert(users).values(values).returning()
      if (!row) throw new Error('INSERT ... RETURNING returned no row')
      return row
    },

    async findById(id: string, tx: Executor = db): Promise<UserRow | undefined> {
      const [row] = await tx.select().from(users).where(eq(users.id, id))
      return row
    },

    /** Locks the row until the transaction ends, so concurrent changes apply one at a time. */
    async findByIdForUpdate(id: string, tx: Executor): Promise<UserRow | undefined> {
      const [row] = await tx.select().from(users).where(eq(users.id, id)).for('update')
      return row
    },

    async findByEmail(email: string, tx: Executor = db): Promise<UserRow | undefined> {
      const [row] = await tx
        .select()
        .from(users)
        .where(sql`lower(${users.email}) = ${email.toLowerCase()}`)
      return row
    },

    async anyActiveAdmin(tx: Executor = db): Promise<boolean> {
      const [row] = await tx
        .select({ id: users.id })
        .from(users)
        .where(and(eq(users.role, 'admin'), eq(users.isActive, true)))
        .limit(1)
      return row !== undefined
    },

    async list(options: UserListOptions, tx: Executor = db) {
      const pattern = options.search === undefined ? undefined : containsPattern(options.search)
      const where: SQL | undefined = and(
        options.role === undefined ? undefined : eq(users.role, options.role),
        options.isActive === undefined ? undefined : eq(users.isActive, options.isActive),
        pattern === undefined
          ? undefined
          : or(ilike(users.email, pattern), ilike(users.fullName, pattern)),
      )
      const order = options.descending ? desc : asc
      const column = options.sort === 'email' ? users.email : users.createdAt
      const [rows, [totals]] = await Promise.all([
        tx
          .select()
          .from(users)
          .where(where)
          .orderBy(order(column), order(users.id))
          .limit(options.limit)
          .offset(options.offset),
        tx.select({ total: count() }).from(users).where(where),
      ])
      return { rows, total: totals?.total ?? 0 }
    },

    async update(
      id: string,
      values: Partial<NewUserRow>,
      tx: Executor = db,
    ): Promise<UserRow | undefined> {
      const [row] = await tx.update(users).set(values).where(eq(users.id, id)).returning()
      return row
    },

    async delete(id: string, tx: Executor = db): Promise<boolean> {
      const deleted = await tx.delete(users).where(eq(users.id, id)).returning({ id: users.id })
      return deleted.length > 0
    },

    /**
     * Cuts every credential of a user at once: refresh tokens and API keys are revoked and
     * the auth version moves on, so access tokens already issued are refused too.
     */
    async revokeAllCredentials(id: string, tx: Executor): Promise<void> {
      const now = new Date()
      await tx
        .update(users)
        .set({ authVersion: sql`${users.authVersion} + 1` })
        .where(eq(users.id, id))
      await tx
        .update(refreshTokens)
        .set({ revokedAt: now })
        .where(and(eq(refreshTokens.userId, id), isNull(refreshTokens.revokedAt)))
      await tx
        .update(apiKeys)
        .set({ revokedAt: now })
        .where(and(eq(apiKeys.userId, id), isNull(apiKeys.revokedAt)))
    },
  }
}

export type UserRepository = ReturnType<typeof createUserRepository>
