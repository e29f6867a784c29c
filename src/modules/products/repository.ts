import { and, asc, count, desc, eq, gte, ilike, lte, or, type SQL, sql } from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import { type NewProductRow, type ProductRow, products } from '../../db/schema/index.js'
import { containsPattern } from '../../db/search.js'

export interface ProductFilter {
  isActive?: boolean
  minPrice?: string
  maxPrice?: string
  search?: string
}

export type ProductSort = 'name' | 'price' | 'created_at'

export interface ProductListOptions extends ProductFilter {
  sort: ProductSort
  descending: boolean
  limit: number
  offset: number
}

const SORT_COLUMNS = {
  name: products.name,
  price: products.price,
  created_at: products.createdAt,
} as const

function whereClause(filter: ProductFilter): SQL | undefined {
  const pattern = filter.search === undefined ? undefined : containsPattern(filter.search)
  return and(
    filter.isActive === undefined ? undefined : eq(products.isActive, filter.isActive),
    filter.minPrice === undefined ? undefined : gte(products.price, filter.minPrice),
    filter.maxPrice === undefined ? undefined : lte(products.price, filter.maxPrice),
    pattern === undefined
      ? undefined
      : or(ilike(products.name, pattern), ilike(products.sku, pattern)),
  )
}

export function createProductRepository(db: Database) {
  // Built once: each read only binds its id (a named statement on every pool connection).
  const byId = db
    .select()
    .from(products)
    .where(eq(products.id, sql.placeholder('id')))
    .prepare('products_by_id')

  return {
    async insert(values: NewProductRow, tx: Executor = db): Promise<ProductRow> {
      const [row] = await tx.insert(products).values(values).returning()
      if (!row) throw new Error('INSERT ... RETURNING returned no row')
      return row
    },

    async findById(id: string, tx?: Executor): Promise<ProductRow | undefined> {
      const [row] = await (tx
        ? tx.select().from(products).where(eq(products.id, id))
        : byId.execute({ id }))
      return row
    },

    /** Locks the row until the transaction ends, so a before/after pair is exact. */
    async findByIdForUpdate(id: string, tx: Executor): Promise<ProductRow | undefined> {
      const [row] = await tx.select().from(products).where(eq(products.id, id)).for('update')
      return row
    },

    async list(
      options: ProductListOptions,
      tx: Executor = db,
    ): Promise<{ rows: ProductRow[]; total: number }> {
      const where = whereClause(options)
      const order = options.descending ? desc : asc
      const [rows, [totals]] = await Promise.all([
        tx
          .select()
          .from(products)
          .where(where)
          // The id tie-breaker keeps pages stable when sort values repeat.
          .orderBy(order(SORT_COLUMNS[options.sort]), order(products.id))
          .limit(options.limit)
          .offset(options.offset),
        tx.select({ total: count() }).from(products).where(where),
      ])
      return { rows, total: totals?.total ?? 0 }
    },

    async update(
      id: string,
      values: Partial<NewProductRow>,
      tx: Executor = db,
    ): Promise<ProductRow | undefined> {
      const [row] = await tx.update(products).set(values).where(eq(products.id, id)).returning()
      return row
    },

    async delete(id: string, tx: Executor = db): Promise<ProductRow | undefined> {
      const [row] = await tx.delete(products).where(eq(products.id, id)).returning()
      return row
    },
  }
}

export type ProductRepository = ReturnType<typeof createProductRepository>
