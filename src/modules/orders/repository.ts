import {
  and,
  asc,
  count,
  desc,
  eq,
  getTableColumns,
  gte,
  ilike,
  inArray,
  lte,
  or,
  type Placeholder,
  type SQL,
  sql,
} from 'drizzle-orm'
import type { Database, Executor } from '../../db/client.js'
import {
  customers,
  type NewOrderRow,
  ORDER_STATUSES,
  type OrderItemRow,
  type OrderRow,
  type OrderStatus,
  orderItems,
  orders,
  type ProductRow,
  products,
} from '../../db/schema/index.js'
import { containsPattern } from '../../db/search.js'
import type { Actor } from '../audit/actor.js'
import type { AuditEntry } from '../audit/log.js'
import { auditInsert } from '../audit/log.js'

export interface OrderFilter {
  /** Only this user's orders; null for everyone's. */
  ownerId: string | null
  status?: OrderStatus
  customerId?: string
  createdFrom?: Date
  createdTo?: Date
  minTotal?: string
  maxTotal?: string
  search?: string
}

export type OrderSort = 'created_at' | 'total' | 'status'

export interface OrderListOptions extends OrderFilter {
  sort: OrderSort
  descending: boolean
  limit: number
  offset: number
}

/** An order as the API shows it: the row, its customer's name and its lines. */
export interface OrderDetail {
  order: OrderRow
  customerName: string
  items: OrderItemRow[]
}

export interface CustomerSummary {
  id: string
  name: string
  isActive: boolean
}

/** Everything a placed order writes, ids included. */
export interface Placement {
  stock: StockChange[]
  order: OrderRow
  items: OrderItemRow[]
  actor: Actor
  audit: AuditEntry
}

/** A change of a product's stock: negative to take units, positive to put them back. */
export interface StockChange {
  productId: string
  delta: number
}

// Lifecycle order rather than alphabetical: "sort=status" reads pending first.
const STATUS_RANK = sql.join(
  [
    sql`CASE ${orders.status}`,
    ...ORDER_STATUSES.map((status, rank) => sql`WHEN ${status} THEN ${rank}::integer`),
    sql`END`,
  ],
  sql` `,
)

const SORT_EXPRESSIONS = {
  created_at: orders.createdAt,
  total: orders.total,
  status: STATUS_RANK,
} as const

/**
 * An order's lines as one JSON array, in position order, so an order and its lines come back
 * in one round trip. Money leaves as text: a JSON number would drop "19.90" to 19.9.
 */
const itemsJson = sql<OrderItemRow[]>`(
  SELECT coalesce(json_agg(json_build_object(
    'id', i.id, 'orderId', i.order_id, 'productId', i.product_id,
    'productName', i.product_name, 'sku', i.sku, 'quantity', i.quantity,
    'unitPrice', i.unit_price::text, 'lineTotal', i.line_total::text, 'position', i.position
  ) ORDER BY i.position), '[]'::json)
  FROM ${orderItems} i WHERE i.order_id = ${orders.id}
)`.mapWith((value: OrderItemRow[] | string) =>
  // Both drivers parse json columns; a driver configured not to would hand over the text.
  typeof value === 'string' ? JSON.parse(value) : value,
)

const header = { ...getTableColumns(orders), customerName: customers.name }
const detail = { ...header, items: itemsJson }

/**
 * The filters of a page. `bind` hands each set filter's value to the statement: as a
 * placeholder for a prepared statement (its text then depends only on which filters are
 * set), or as the value itself for a one-off query.
 */
function whereClause(filter: OrderFilter, bind: Bind = asValue): SQL | undefined {
  const pattern = filter.search === undefined ? undefined : containsPattern(filter.search)
  return and(
    filter.ownerId === null ? undefined : eq(orders.createdBy, bind('ownerId', filter.ownerId)),
    filter.status === undefined ? undefined : eq(orders.status, bind('status', filter.status)),
    filter.customerId === undefined
      ? undefined
      : eq(orders.customerId, bind('customerId', filter.customerId)),
    filter.createdFrom === undefined
      ? undefined
      : gte(orders.createdAt, bind('createdFrom', filter.createdFrom)),
    filter.createdTo === undefined
      ? undefined
      : lte(orders.createdAt, bind('createdTo', filter.createdTo)),
    filter.minTotal === undefined
      ? undefined
      : gte(orders.total, bind('minTotal', filter.minTotal)),
    filter.maxTotal === undefined
      ? undefined
      : lte(orders.total, bind('maxTotal', filter.maxTotal)),
    pattern === undefined
      ? undefined
      : or(
          ilike(orders.notes, bind('pattern', pattern)),
          ilike(customers.name, bind('pattern', pattern)),
        ),
  )
}

type Bind = <T>(name: string, value: T) => T | Placeholder

const asValue: Bind = (_name, value) => value
const asPlaceholder: Bind = (name) => sql.placeholder(name)

/** The values a prepared page statement binds; dates as ISO text, which both drivers pass alike. */
function pageParams(options: OrderListOptions, cap: number) {
  return {
    ownerId: options.ownerId,
    status: options.status,
    customerId: options.customerId,
    createdFrom: options.createdFrom?.toISOString(),
    createdTo: options.createdTo?.toISOString(),
    minTotal: options.minTotal,
    maxTotal: options.maxTotal,
    pattern: options.search === undefined ? undefined : containsPattern(options.search),
    limit: options.limit,
    offset: options.offset,
    cap,
  }
}

/** Which filters are set and how the page sorts: all a prepared page statement's text depends on. */
function shapeOf(options: OrderListOptions): string {
  const set = [
    options.ownerId,
    options.status,
    options.customerId,
    options.createdFrom,
    options.createdTo,
    options.minTotal,
    options.maxTotal,
    options.search,
  ].map((value) => (value === undefined || value === null ? 0 : 1))
  return `${set.join('')}_${options.sort}_${options.descending ? 'desc' : 'asc'}`
}

function splitDetail(row: OrderRow & { customerName: string; items: OrderItemRow[] }) {
  const { customerName, items, ...order } = row
  return { order, customerName, items }
}

/** An order with its customer's name and its lines, in one statement. */
function selectDetail(tx: Executor, id: string | Placeholder) {
  return tx
    .select(detail)
    .from(orders)
    .innerJoin(customers, eq(customers.id, orders.customerId))
    .where(eq(orders.id, id))
}

/** One page of orders, each with its customer's name and its lines, in one statement. */
function selectPage(tx: Executor, options: OrderListOptions, bind: Bind = asValue) {
  const order = options.descending ? desc : asc
  return (
    tx
      .select(detail)
      .from(orders)
      .innerJoin(customers, eq(customers.id, orders.customerId))
      .where(whereClause(options, bind))
      // The id tie-breaker keeps pages stable when sort values repeat.
      .orderBy(order(SORT_EXPRESSIONS[options.sort]), order(orders.id))
      .limit(bind('limit', options.limit))
      .offset(bind('offset', options.offset))
  )
}

/**
 * The orders a page's filters match. Only a search in `q` reads the customer's name; without
 * one the join is left out, since every order has exactly one customer (non-null foreign key)
 * and PostgreSQL never drops an inner join by itself.
 */
function selectMatching(tx: Executor, options: OrderListOptions, bind: Bind = asValue) {
  const visible = tx.select({ one: sql`1` }).from(orders)
  return options.search === undefined
    ? visible.where(whereClause(options, bind))
    : visible
        .innerJoin(customers, eq(customers.id, orders.customerId))
        .where(whereClause(options, bind))
}

/** The matching orders counted up to `cap` and no further: at most `cap` index entries read. */
function selectCappedCount(
  tx: Executor,
  options: OrderListOptions,
  cap: number,
  bind: Bind = asValue,
) {
  const matching = selectMatching(tx, options, bind).limit(bind('cap', cap)).as('matching')
  return tx.select({ total: count() }).from(matching)
}

/** The planner's estimate of the matching orders: no row is read. */
async function estimateCount(tx: Executor, options: OrderListOptions): Promise<number> {
  const { rows } = (await tx.execute(
    sql`EXPLAIN (FORMAT JSON) ${selectMatching(tx, options)}`,
  )) as unknown as { rows: { 'QUERY PLAN': unknown }[] }
  const raw = rows[0]?.['QUERY PLAN']
  const plan = (typeof raw === 'string' ? JSON.parse(raw) : raw) as [
    { Plan: { 'Plan Rows': number } },
  ]
  return Math.round(plan[0].Plan['Plan Rows'])
}

/** The stock change of some locked products, not yet run. */
function updateStock(changes: StockChange[], tx: Executor) {
  const delta = sql.join(
    [
      sql`CASE ${products.id}`,
      ...changes.map((c) => sql`WHEN ${c.productId}::uuid THEN ${c.delta}::integer`),
      sql`END`,
    ],
    sql` `,
  )
  return tx
    .update(products)
    .set({ stock: sql`${products.stock} + ${delta}`, updatedAt: new Date() })
    .where(
      inArray(
        products.id,
        changes.map((c) => c.productId),
      ),
    )
}

type PageRows = Awaited<ReturnType<typeof selectPage>>
type CountRows = Awaited<ReturnType<typeof selectCappedCount>>

export function createOrderRepository(db: Database) {
  // Built once: each request only binds its id (a named statement on every pool connection).
  const detailById = selectDetail(db, sql.placeholder('id')).prepare('orders_detail_by_id')

  /**
   * A page's two statements, prepared once per shape (which filters are set, the sort): at
   * most 2^8 x 3 x 2 of them, each named after its shape so that a connection never sees
   * one name with two texts.
   */
  type PageParams = ReturnType<typeof pageParams>
  const pageStatements = new Map<string, (params: PageParams) => Promise<[PageRows, CountRows]>>()
  function preparedPage(options: OrderListOptions) {
    const shape = shapeOf(options)
    let run = pageStatements.get(shape)
    if (!run) {
      const page = selectPage(db, options, asPlaceholder).prepare(`orders_page_${shape}`)
      const counted = selectCappedCount(db, options, 0, asPlaceholder).prepare(
        `orders_count_${shape}`,
      )
      run = (params) => Promise.all([page.execute(params), counted.execute(params)])
      pageStatements.set(shape, run)
    }
    return run
  }

  async function itemsOf(orderIds: string[], tx: Executor = db): Promise<OrderItemRow[]> {
    if (orderIds.length === 0) return []
    return tx
      .select()
      .from(orderItems)
      .where(inArray(orderItems.orderId, orderIds))
      .orderBy(asc(orderItems.orderId), asc(orderItems.position))
  }

  async function findCustomer(id: string, tx: Executor = db): Promise<CustomerSummary | undefined> {
    const [row] = await tx
      .select({ id: customers.id, name: customers.name, isActive: customers.isActive })
      .from(customers)
      .where(eq(customers.id, id))
    return row
  }

  return {
    itemsOf,

    findCustomer,

    /**
     * Locks the products until the transaction ends, always in id order: every transaction
     * that touches stock takes its locks in the same order, so two of them never wait on
     * each other in a cycle (no deadlock), and stock read here cannot change before commit.
     */
    async lockProducts(ids: string[], tx: Executor): Promise<ProductRow[]> {
      if (ids.length === 0) return []
      return tx
        .select()
        .from(products)
        .where(inArray(products.id, ids))
        .orderBy(asc(products.id))
        .for('update')
    },

    /**
     * What placing an order reads, in one statement: its products locked as `lockProducts`
     * locks them, and its customer alongside each of them. Only when no product exists is
     * the customer read on its own, since then there is no row to carry it.
     */
    async lockForOrder(
      customerId: string,
      productIds: string[],
      tx: Executor,
    ): Promise<{ customer: CustomerSummary | undefined; products: ProductRow[] }> {
      const customer = (column: typeof customers.name | typeof customers.isActive) =>
        sql`(SELECT ${column} FROM ${customers} WHERE ${customers.id} = ${customerId})`
      const rows = await tx
        .select({
          product: getTableColumns(products),
          customerName: customer(customers.name).mapWith(String),
          customerIsActive: customer(customers.isActive).mapWith(Boolean),
        })
        .from(products)
        .where(inArray(products.id, productIds))
        .orderBy(asc(products.id))
        .for('update', { of: products })
      const [first] = rows
      if (!first) return { customer: await findCustomer(customerId, tx), products: [] }
      return {
        // The name is NOT NULL, so a null one means there is no such customer.
        customer:
          first.customerName === null
            ? undefined
            : { id: customerId, name: first.customerName, isActive: first.customerIsActive },
        products: rows.map((row) => row.product),
      }
    },

    /** Applies stock changes in one statement; the rows must already be locked. */
    async changeStock(changes: StockChange[], tx: Executor): Promise<void> {
      if (changes.length > 0) await updateStock(changes, tx)
    },

    /**
     * Writes a placed order in one statement: the stock it takes, its row, its lines and its
     * audit event, as one data-modifying WITH. The products must already be locked and the
     * stock checked; the ids come from the caller, so nothing needs reading back.
     */
    async place(placement: Placement, tx: Executor): Promise<void> {
      // Drizzle puts each embedded statement in parentheses, as WITH wants it.
      await tx.execute(sql`WITH
        stock AS ${updateStock(placement.stock, tx)},
        placed AS ${tx.insert(orders).values(placement.order)},
        lines AS ${tx.insert(orderItems).values(placement.items)},
        audit AS ${auditInsert(tx, placement.actor, placement.audit)}
        SELECT 1`)
    },

    async findById(id: string, tx?: Executor): Promise<OrderDetail | undefined> {
      const [row] = await (tx ? selectDetail(tx, id) : detailById.execute({ id }))
      return row && splitDetail(row)
    },

    /** Locks the order row until the transaction ends, so changes to it apply one at a time. */
    async findByIdForUpdate(id: string, tx: Executor): Promise<OrderRow | undefined> {
      const [row] = await tx.select().from(orders).where(eq(orders.id, id)).for('update')
      return row
    },

    /**
     * One page of orders with their customers and lines, and its total: two statements run
     * side by side, however long the page. The total is exact up to `exactCountMax` orders;
     * beyond that it is the planner's estimate (never below what the caller has paged
     * through), flagged `totalIsEstimate`, so a page never counts every order it could see.
     */
    async list(
      options: OrderListOptions,
      exactCountMax: number,
      tx?: Executor,
    ): Promise<{ rows: OrderDetail[]; total: number; totalIsEstimate: boolean }> {
      const cap = exactCountMax + 1
      const [page, [counted]] = await (tx
        ? Promise.all([selectPage(tx, options), selectCappedCount(tx, options, cap)])
        : preparedPage(options)(pageParams(options, cap)))
      const rows = page.map(splitDetail)
      const total = counted?.total ?? 0
      if (total <= exactCountMax) return { rows, total, totalIsEstimate: false }
      const estimate = await estimateCount(tx ?? db, options)
      const seen = options.offset + rows.length + (rows.length === options.limit ? 1 : 0)
      return { rows, total: Math.max(estimate, cap, seen), totalIsEstimate: true }
    },

    async update(
      id: string,
      values: Partial<NewOrderRow>,
      tx: Executor = db,
    ): Promise<OrderRow | undefined> {
      const [row] = await tx.update(orders).set(values).where(eq(orders.id, id)).returning()
      return row
    },

    /** Deletes the order; its items go with it (ON DELETE CASCADE). */
    async delete(id: string, tx: Executor = db): Promise<OrderRow | undefined> {
      const [row] = await tx.delete(orders).where(eq(orders.id, id)).returning()
      return row
    },
  }
}

export type OrderRepository = ReturnType<typeof createOrderRepository>
