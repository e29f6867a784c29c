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
  type NewOrderItemRow,
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

function whereClause(filter: OrderFilter): SQL | undefined {
  const pattern = filter.search === undefined ? undefined : containsPattern(filter.search)
  return and(
    filter.ownerId === null ? undefined : eq(orders.createdBy, filter.ownerId),
    filter.status === undefined ? undefined : eq(orders.status, filter.status),
    filter.customerId === undefined ? undefined : eq(orders.customerId, filter.customerId),
    filter.createdFrom === undefined ? undefined : gte(orders.createdAt, filter.createdFrom),
    filter.createdTo === undefined ? undefined : lte(orders.createdAt, filter.createdTo),
    filter.minTotal === undefined ? undefined : gte(orders.total, filter.minTotal),
    filter.maxTotal === undefined ? undefined : lte(orders.total, filter.maxTotal),
    pattern === undefined
      ? undefined
      : or(ilike(orders.notes, pattern), ilike(customers.name, pattern)),
  )
}

function split(row: OrderRow & { customerName: string }): Omit<OrderDetail, 'items'> {
  const { customerName, ...order } = row
  return { order, customerName }
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

/**
 * The total for a page. Only a search in `q` reads the customer's name; without one the
 * join is left out, since every order has exactly one customer (non-null foreign key) and
 * PostgreSQL never drops an inner join by itself: the count is then an index scan of
 * orders alone, the dominant cost of a page on a large table.
 */
async function countOrders(filter: OrderFilter, where: SQL | undefined, tx: Executor) {
  const query = tx.select({ total: count() }).from(orders)
  const [totals] = await (filter.search === undefined
    ? query.where(where)
    : query.innerJoin(customers, eq(customers.id, orders.customerId)).where(where))
  return totals
}

export function createOrderRepository(db: Database) {
  // Built once: each request only binds its id (a named statement on every pool connection).
  const detailById = selectDetail(db, sql.placeholder('id')).prepare('orders_detail_by_id')

  async function itemsOf(orderIds: string[], tx: Executor = db): Promise<OrderItemRow[]> {
    if (orderIds.length === 0) return []
    return tx
      .select()
      .from(orderItems)
      .where(inArray(orderItems.orderId, orderIds))
      .orderBy(asc(orderItems.orderId), asc(orderItems.position))
  }

  return {
    itemsOf,

    async findCustomer(id: string, tx: Executor = db): Promise<CustomerSummary | undefined> {
      const [row] = await tx
        .select({ id: customers.id, name: customers.name, isActive: customers.isActive })
        .from(customers)
        .where(eq(customers.id, id))
      return row
    },

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

    /** Applies stock changes in one statement; the rows must already be locked. */
    async changeStock(changes: StockChange[], tx: Executor): Promise<void> {
      if (changes.length === 0) return
      const delta = sql.join(
        [
          sql`CASE ${products.id}`,
          ...changes.map((c) => sql`WHEN ${c.productId}::uuid THEN ${c.delta}::integer`),
          sql`END`,
        ],
        sql` `,
      )
      await tx
        .update(products)
        .set({ stock: sql`${products.stock} + ${delta}`, updatedAt: new Date() })
        .where(
          inArray(
            products.id,
            changes.map((c) => c.productId),
          ),
        )
    },

    async insert(values: NewOrderRow, tx: Executor = db): Promise<OrderRow> {
      const [row] = await tx.insert(orders).values(values).returning()
      if (!row) throw new Error('INSERT ... RETURNING returned no row')
      return row
    },

    async insertItems(values: NewOrderItemRow[], tx: Executor = db): Promise<OrderItemRow[]> {
      const rows = await tx.insert(orderItems).values(values).returning()
      return rows.sort((a, b) => a.position - b.position)
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
     * One page of orders with their customers and items in three queries, however long the
     * page: the page itself, its total, and the items of every order on it.
     */
    async list(
      options: OrderListOptions,
      tx: Executor = db,
    ): Promise<{ rows: OrderDetail[]; total: number }> {
      const where = whereClause(options)
      const order = options.descending ? desc : asc
      const [page, totals] = await Promise.all([
        tx
          .select(header)
          .from(orders)
          .innerJoin(customers, eq(customers.id, orders.customerId))
          .where(where)
          // The id tie-breaker keeps pages stable when sort values repeat.
          .orderBy(order(SORT_EXPRESSIONS[options.sort]), order(orders.id))
          .limit(options.limit)
          .offset(options.offset),
        countOrders(options, where, tx),
      ])
      const items = await itemsOf(
        page.map((row) => row.id),
        tx,
      )
      const byOrder = new Map<string, OrderItemRow[]>()
      for (const item of items) {
        const lines = byOrder.get(item.orderId)
        if (lines) lines.push(item)
        else byOrder.set(item.orderId, [item])
      }
      return {
        rows: page.map((row) => ({ ...split(row), items: byOrder.get(row.id) ?? [] })),
        total: totals?.total ?? 0,
      }
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
