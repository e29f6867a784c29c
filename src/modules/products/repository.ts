import {
  and,
  asc,
  count,
  desc,
  eq,
  gte,
  ilike,
  lte,
  or,
  type Placeholder,
  type SQL,
  sql,
} from 'drizzle-orm'
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

type Bind = <T>(name: string, value: T) => T | Placeholder

const asValue: Bind = (_name, value) => value
const asPlaceholder: Bind = (name) => sql.placeholder(name)

/**
 * The filters of a page. `bind` hands each set filter's value to the statement: as a
 * placeholder for a prepared statement (its text then depends only on which filters are
 * set), or as the value itself for a one-off query.
 */
function whereClause(filter: ProductFilter, bind: Bind = asValue): SQL | undefined {
  const pattern = filter.search === undefined ? undefined : containsPattern(filter.search)
  return and(
    filter.isActive === undefined
      ? undefined
      : eq(products.isActive, bind('isActive', filter.isActive)),
    filter.minPrice === undefined
      ? undefined
      : gte(products.price, bind('minPrice', filter.minPrice)),
    filter.maxPrice === undefined
      ? undefined
      : lte(products.price, bind('maxPrice', filter.maxPrice)),
    pattern === undefined
      ? undefined
      : or(
          ilike(products.name, bind('pattern', pattern)),
          ilike(products.sku, bind('pattern', pattern)),
        ),
  )
}

function selectPage(tx: Executor, options: ProductListOptions, bind: Bind = asValue) {
  const order = options.descending ? desc : asc
  return (
    tx
      .select()
      .from(products)
      .where(whereClause(options, bind))
      // The id tie-breaker keeps pages stable when sort values repeat.
      .orderBy(order(SORT_COLUMNS[options.sort]), order(products.id))
      .limit(bind('limit', options.limit))
      .offset(bind('offset', options.offset))
  )
}

function selectTotal(tx: Executor, options: ProductListOptions, bind: Bind = asValue) {
  return tx.select({ total: count() }).from(products).where(whereClause(options, bind))
}

/** Which filters are set and how the page sorts: all a prepared page statement's text depends on. */
function shapeOf(options: ProductListOptions): string {
  const set = [options.isActive, options.minPrice, options.maxPrice, options.search].map((value) =>
    value === undefined ? 0 : 1,
  )
  return `${set.join('')}_${options.sort}_${options.descending ? 'desc' : 'asc'}`
}

function pageParams(options: ProductListOptions) {
  return {
    isActive: options.isActive,
    minPrice: options.minPrice,
    maxPrice: options.maxPrice,
    pattern: options.search === undefined ? undefined : containsPattern(options.search),
    limit: options.limit,
    offset: options.offset,
  }
}

type PageRows = Awaited<ReturnType<typeof selectPage>>
type TotalRows = Awaited<ReturnType<typeof selectTotal>>

export function createProductRepository(db: Database) {
  // Built once: each read only binds its id (a named statement on every pool connection).
  const byId = db
    .select()
    .from(products)
    .where(eq(products.id, sql.placeholder('id')))
    .prepare('products_by_id')

  /**
   * A page's two statements, prepared once per shape (which filters are set, the sort): at
   * most 2^4 x 3 x 2 of them, each named after its shape so that a connection never sees one
   * name with two texts.
   */
  const pageStatements = new Map<
    string,
    (params: ReturnType<typeof pageParams>) => Promise<[PageRows, TotalRows]>
  >()
  function preparedPage(options: ProductListOptions) {
    const shape = shapeOf(options)
    let run = pageStatements.get(shape)
    if (!run) {
      const page = selectPage(db, options, asPlaceholder).prepare(`products_page_${shape}`)
      const total = selectTotal(db, options, asPlaceholder).prepare(`products_count_${shape}`)
      run = (params) => Promise.all([page.execute(params), total.execute(params)])
      pageStatements.set(shape, run)
    }
    return run
  }

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
      tx?: Executor,
    ): Promise<{ rows: ProductRow[]; total: number }> {
      const [rows, [totals]] = await (tx
        ? Promise.all([selectPage(tx, options), selectTotal(tx, options)])
        : preparedPage(options)(pageParams(options)))
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
