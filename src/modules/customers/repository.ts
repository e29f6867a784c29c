import { and, asc, count, desc, eq, ilike, or, type Placeholder, type SQL, sql } from 'drizzle-orm'
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

type Bind = <T>(name: string, value: T) => T | Placeholder

const asValue: Bind = (_name, value) => value
const asPlaceholder: Bind = (name) => sql.placeholder(name)

/**
 * The filters of a page. `bind` hands each set filter's value to the statement: as a
 * placeholder for a prepared statement (its text then depends only on which filters are
 * set), or as the value itself for a one-off query.
 */
function whereClause(filter: CustomerFilter, bind: Bind = asValue): SQL | undefined {
  const pattern = filter.search === undefined ? undefined : containsPattern(filter.search)
  return and(
    filter.tier === undefined ? undefined : eq(customers.tier, bind('tier', filter.tier)),
    filter.isActive === undefined
      ? undefined
      : eq(customers.isActive, bind('isActive', filter.isActive)),
    pattern === undefined
      ? undefined
      : or(
          ilike(customers.name, bind('pattern', pattern)),
          ilike(customers.email, bind('pattern', pattern)),
        ),
  )
}

function selectPage(tx: Executor, options: CustomerListOptions, bind: Bind = asValue) {
  const order = options.descending ? desc : asc
  return (
    tx
      .select()
      .from(customers)
      .where(whereClause(options, bind))
      // The id tie-breaker keeps pages stable when sort values repeat.
      .orderBy(order(SORT_COLUMNS[options.sort]), order(customers.id))
      .limit(bind('limit', options.limit))
      .offset(bind('offset', options.offset))
  )
}

function selectTotal(tx: Executor, options: CustomerListOptions, bind: Bind = asValue) {
  return tx.select({ total: count() }).from(customers).where(whereClause(options, bind))
}

/** Which filters are set and how the page sorts: all a prepared page statement's text depends on. */
function shapeOf(options: CustomerListOptions): string {
  const set = [options.tier, options.isActive, options.search].map((value) =>
    value === undefined ? 0 : 1,
  )
  return `${set.join('')}_${options.sort}_${options.descending ? 'desc' : 'asc'}`
}

function pageParams(options: CustomerListOptions) {
  return {
    tier: options.tier,
    isActive: options.isActive,
    pattern: options.search === undefined ? undefined : containsPattern(options.search),
    limit: options.limit,
    offset: options.offset,
  }
}

type PageRows = Awaited<ReturnType<typeof selectPage>>
type TotalRows = Awaited<ReturnType<typeof selectTotal>>

export function createCustomerRepository(db: Database) {
  // Built once: each read only binds its id (a named statement on every pool connection).
  const byId = db
    .select()
    .from(customers)
    .where(eq(customers.id, sql.placeholder('id')))
    .prepare('customers_by_id')

  /**
   * A page's two statements, prepared once per shape (which filters are set, the sort): at
   * most 2^3 x 2 x 2 of them, each named after its shape so that a connection never sees one
   * name with two texts.
   */
  const pageStatements = new Map<
    string,
    (params: ReturnType<typeof pageParams>) => Promise<[PageRows, TotalRows]>
  >()
  function preparedPage(options: CustomerListOptions) {
    const shape = shapeOf(options)
    let run = pageStatements.get(shape)
    if (!run) {
      const page = selectPage(db, options, asPlaceholder).prepare(`customers_page_${shape}`)
      const total = selectTotal(db, options, asPlaceholder).prepare(`customers_count_${shape}`)
      run = (params) => Promise.all([page.execute(params), total.execute(params)])
      pageStatements.set(shape, run)
    }
    return run
  }

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
      tx?: Executor,
    ): Promise<{ rows: CustomerRow[]; total: number }> {
      const [rows, [totals]] = await (tx
        ? Promise.all([selectPage(tx, options), selectTotal(tx, options)])
        : preparedPage(options)(pageParams(options)))
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
