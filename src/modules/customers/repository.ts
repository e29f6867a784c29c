import { and, asc, count, desc, eq, ilike, or, type SQL, sql } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import {
  type CustomerRow,
  type CustomerTier,
  customers,
  type NewCustomerRow,
} from '../../db/schema/index.js'
import { containsPattern } from '../../db/search.js'

export interface CustomerFilter {
  tier?: CustomerTier
  isActive?: boolean
  search?: string
}

export type CustomerSort = 'name' | 'created_at'

export interface CustomerListOptions extends CustomerFilter {
  sort: CustomerSort
  descending: boolean
  limit: number
  offset: number
}

const SORT_COLUMNS = {
  name: customers.name,
  created_at: customers.createdAt,
} as const

function whereClause(filter: CustomerFilter): SQL | undefined {
  const pattern = filter.search === undefined ? undefined : containsPattern(filter.search)
  return and(
    filter.tier === undefined ? undefined : eq(customers.tier, filter.tier),
    filter.isActive === undefined ? undefined : eq(customers.isActive, filter.isActive),
    pattern === undefined
      ? undefined
      : or(ilike(customers.name, pattern), ilike(customers.email, pattern)),
  )
}

export function createCustomerRepository(db: Database) {
  // Built once: each read only binds its id (a named statement on every pool connection).
  const byId = db
    .select()
    .from(customers)
    .where(eq(customers.id, sql.placeholder('id')))
    .prepare('customers_by_id')

  return {
    async insert(values: NewCustomerRow, tx: Executor = db): Promise<CustomerRow> {
      const [row] = await tx.insert(customers).values(values).returning()
      if (!row) throw new Error('INSERT ... RETURNING returned no row')
      return row
    },

    async findById(id: string, tx?: Executor): Promise<CustomerRow | undefined> {
      const [row] = await (tx
        ? tx.select().from(customers).where(eq(customers.id, id))
        : byId.execute({ id }))
      return row
    },

    /** Locks the row until the transaction ends, so a before/after pair is exact. */
    async findByIdForUpdate(id: string, tx: Executor): Promise<CustomerRow | undefined> {
      const [row] = await tx.select().from(customers).where(eq(customers.id, id)).for('update')
      return row
    },

    async list(
      options: CustomerListOptions,
      tx: Executor = db,
    ): Promise<{ rows: CustomerRow[]; total: number }> {
      const where = whereClause(options)
      const order = options.descending ? desc : asc
      const [rows, [totals]] = await Promise.all([
        tx
          .select()
          .from(customers)
          .where(where)
          // The id tie-breaker keeps pages stable when sort values repeat.
          .orderBy(order(SORT_COLUMNS[options.sort]), order(customers.id))
          .limit(options.limit)
          .offset(options.offset),
        tx.select({ total: count() }).from(customers).where(where),
      ])
      return { rows, total: totals?.total ?? 0 }
    },

    async update(
      id: string,
      values: Partial<NewCustomerRow>,
      tx: Executor = db,
    ): Promise<CustomerRow | undefined> {
      const [row] = await tx.update(customers).set(values).where(eq(customers.id, id)).returning()
      return row
    },

    async delete(id: string, tx: Executor = db): Promise<CustomerRow | undefined> {
      const [row] = await tx.delete(customers).where(eq(customers.id, id)).returning()
      return row
    },
  }
}

export type CustomerRepository = ReturnType<typeof createCustomerRepository>
