/**
 * The ceiling of the order routes: node:http and node-postgres sending the very statements
 * the order repository sends (src/modules/orders/repository.ts), text for text, named where
 * the service prepares them and unnamed where it builds them per request, with the checks
 * the service makes and the answer it gives — no framework, no auth, no ORM. It serves the
 * service's paths, so the bench sends both the same requests.
 *
 *   GET  /v1/orders/{id}         1 prepared statement: the order, its customer's name and its
 *                                lines aggregated as JSON
 *   GET  /v1/orders?page_size=n  2 prepared statements side by side (the page with its lines,
 *                                a count capped at ORDER_COUNT_EXACT_MAX + 1), and past the
 *                                cap the planner's estimate (EXPLAIN)
 *   POST /v1/orders              BEGIN; the products locked in id order with their customer
 *                                in one statement; the no-oversell check; one data-modifying
 *                                WITH (stock, order row, lines, audit row); COMMIT
 *
 * It reads as an admin does: every order is visible. Orders it places are created by
 * CREATED_BY (the bench admin), as the service's are.
 *
 *   DATABASE_URL           PostgreSQL (the ceiling always runs against a server)
 *   DATABASE_POOL_MAX      connections, as the service's setting of the same name
 *   ORDER_COUNT_EXACT_MAX  as the service's setting of the same name (default 1000)
 *   CREATED_BY             the user id that placed orders and their audit rows name
 */
import { randomUUID } from 'node:crypto'
import { URL } from 'node:url'
import pg from 'pg'
import { fromCents, toCents } from '../../src/shared/money.js'
import { answerHealth, HttpFailure, readJson, sendJson, serve } from './http.js'

const ORDER_COLUMNS = `"orders"."id", "orders"."customer_id", "orders"."created_by", \
"orders"."status", "orders"."total", "orders"."notes", "orders"."created_at", \
"orders"."updated_at", "customers"."name"`
const ITEMS_JSON = `(
  SELECT coalesce(json_agg(json_build_object(
    'id', i.id, 'orderId', i.order_id, 'productId', i.product_id,
    'productName', i.product_name, 'sku', i.sku, 'quantity', i.quantity,
    'unitPrice', i.unit_price::text, 'lineTotal', i.line_total::text, 'position', i.position
  ) ORDER BY i.position), '[]'::json)
  FROM "order_items" i WHERE i.order_id = "orders"."id"
)`
const ORDER_FROM =
  'from "orders" inner join "customers" on "customers"."id" = "orders"."customer_id"'

/** The service's prepared statements, under the names the service gives them. */
const PREPARED = {
  orders_detail_by_id: `select ${ORDER_COLUMNS}, ${ITEMS_JSON} ${ORDER_FROM} where "orders"."id" = $1`,
  orders_page_00000000_created_at_desc: `select ${ORDER_COLUMNS}, ${ITEMS_JSON} ${ORDER_FROM} \
order by "orders"."created_at" desc, "orders"."id" desc limit $1 offset $2`,
  orders_count_00000000_created_at_desc:
    'select count(*) from (select 1 from "orders" limit $1) "matching"',
} as const

/** Sent unnamed, as the service sends it: Drizzle builds it on each request. */
const ESTIMATE = 'EXPLAIN (FORMAT JSON) select 1 from "orders"'

/** `$from, $from+1, ...`: the service's statements bind one parameter per value. */
function placeholders(from: number, count: number): string {
  return Array.from({ length: count }, (_, index) => `$${from + index}`).join(', ')
}

/**
 * The placement's two statements for an order of `lines` lines. Their text depends on the
 * line count only, so they are built once per count here (the service's Drizzle builds them
 * on every request, which is part of what the ratio shows).
 */
function placementSql(lines: number) {
  const lock = `select "id", "sku", "name", "description", "price", "stock", "is_active", \
"created_at", "updated_at", (SELECT "name" FROM "customers" WHERE "id" = $1), \
(SELECT "is_active" FROM "customers" WHERE "id" = $2) from "products" \
where "products"."id" in (${placeholders(3, lines)}) order by "products"."id" asc \
for update of "products"`
  const cases = Array.from(
    { length: lines },
    (_, index) => `WHEN $${2 * index + 1}::uuid THEN $${2 * index + 2}::integer`,
  ).join(' ')
  let next = 2 * lines + 1
  const take = (count: number) => {
    const text = placeholders(next, count)
    next += count
    return text
  }
  const stock = `update "products" set "stock" = "products"."stock" + CASE "products"."id" \
${cases} END, "updated_at" = ${take(1)} where "products"."id" in (${take(lines)})`
  const order = `insert into "orders" ("id", "customer_id", "created_by", "status", "total", \
"notes", "created_at", "updated_at") values (${take(8)})`
  const items = `insert into "order_items" ("id", "order_id", "product_id", "product_name", \
"sku", "quantity", "unit_price", "line_total", "position") values \
${Array.from({ length: lines }, () => `(${take(9)})`).join(', ')}`
  const audit = `insert into "audit_events" ("id", "at", "actor_user_id", "actor_api_key_id", \
"action", "resource_type", "resource_id", "changes", "request_id", "client_address") values \
(default, default, ${take(8)})`
  const write = `WITH
        stock AS (${stock}),
        placed AS (${order}),
        lines AS (${items}),
        audit AS (${audit})
        SELECT 1`
  return { lock, write }
}

const placementStatements = new Map<number, ReturnType<typeof placementSql>>()
function placementFor(lines: number) {
  let statements = placementStatements.get(lines)
  if (!statements) {
    statements = placementSql(lines)
    placementStatements.set(lines, statements)
  }
  return statements
}

/** Named, so each connection parses and plans a statement once and then only binds it. */
function prepared<R extends pg.QueryResultRow>(name: keyof typeof PREPARED, values: unknown[]) {
  return pool.query<R>({ name, text: PREPARED[name], values })
}

interface OrderRow {
  id: string
  customer_id: string
  created_by: string
  status: string
  total: string
  notes: string | null
  created_at: Date
  updated_at: Date
  name: string
  coalesce: ItemJson[]
}

/** A line as the statements aggregate it (the service maps the same keys). */
interface ItemJson {
  id: string
  productId: string
  productName: string
  sku: string
  quantity: number
  unitPrice: string
  lineTotal: string
}

/**
 * A locked product and its customer, by position: the customer's columns are called `name`
 * and `is_active` too, so rows as objects would lose the product's (Drizzle reads arrays).
 */
type LockedRow = [
  id: string,
  sku: string,
  name: string,
  description: string | null,
  price: string,
  stock: number,
  isActive: boolean,
  createdAt: Date,
  updatedAt: Date,
  customerName: string | null,
  customerIsActive: boolean | null,
]

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const MAX_PAGE_SIZE = 100

const databaseUrl = process.env.DATABASE_URL
const createdBy = process.env.CREATED_BY
if (!databaseUrl) throw new Error('DATABASE_URL is not set')
if (!createdBy) throw new Error('CREATED_BY is not set')
const exactCountMax = Number(process.env.ORDER_COUNT_EXACT_MAX ?? 1000)
const pool = new pg.Pool({
  connectionString: databaseUrl,
  max: Number(process.env.DATABASE_POOL_MAX ?? 10),
})
// Fail at start, not on the first request, when the database is unreachable.
await pool.query('SELECT 1')

function toOrder(row: Omit<OrderRow, 'coalesce'>, items: ItemJson[]) {
  return {
    id: row.id,
    customer_id: row.customer_id,
    customer_name: row.name,
    status: row.status,
    items: items.map((item) => ({
      id: item.id,
      product_id: item.productId,
      product_name: item.productName,
      sku: item.sku,
      quantity: item.quantity,
      unit_price: item.unitPrice,
      line_total: item.lineTotal,
    })),
    total: row.total,
    notes: row.notes,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  }
}

async function readOrder(id: string) {
  if (!UUID.test(id)) throw new HttpFailure(422, 'id must be a UUID')
  const [order] = (await prepared<OrderRow>('orders_detail_by_id', [id])).rows
  if (!order) throw new HttpFailure(404, `Order ${id} does not exist.`)
  return toOrder(order, order.coalesce)
}

function pageNumber(params: URLSearchParams, name: string, fallback: number, max: number) {
  const text = params.get(name)
  const value = text === null ? fallback : Number(text)
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new HttpFailure(422, `${name} must be an integer from 1 to ${max}`)
  }
  return value
}

async function listOrders(params: URLSearchParams) {
  const page = pageNumber(params, 'page', 1, 10_000)
  const pageSize = pageNumber(params, 'page_size', 20, MAX_PAGE_SIZE)
  const offset = (page - 1) * pageSize
  const cap = exactCountMax + 1
  const [orders, counted] = await Promise.all([
    prepared<OrderRow>('orders_page_00000000_created_at_desc', [pageSize, offset]),
    prepared<{ count: string }>('orders_count_00000000_created_at_desc', [cap]),
  ])
  let total = Number(counted.rows[0]?.count ?? 0)
  const estimated = total > exactCountMax
  if (estimated) {
    const { rows } = await pool.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
      ESTIMATE,
    )
    const estimate = Math.round(rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? 0)
    const seen = offset + orders.rows.length + (orders.rows.length === pageSize ? 1 : 0)
    total = Math.max(estimate, cap, seen)
  }
  return {
    items: orders.rows.map((row) => toOrder(row, row.coalesce)),
    page,
    page_size: pageSize,
    total,
    total_pages: Math.ceil(total / pageSize),
    total_is_estimate: estimated,
  }
}

interface Line {
  productId: string
  quantity: number
}

function linesOf(body: unknown): { customerId: string; lines: Line[]; notes: string | null } {
  const { customer_id, items, notes } = (body ?? {}) as Record<string, unknown>
  if (typeof customer_id !== 'string' || !UUID.test(customer_id)) {
    throw new HttpFailure(422, 'customer_id must be a UUID')
  }
  if (!Array.isArray(items) || items.length === 0 || items.length > 50) {
    throw new HttpFailure(422, 'items must hold 1 to 50 lines')
  }
  const lines = items.map((item: Record<string, unknown>) => {
    const productId = item?.product_id
    const quantity = item?.quantity
    if (typeof productId !== 'string' || !UUID.test(productId)) {
      throw new HttpFailure(422, 'product_id must be a UUID')
    }
    if (!Number.isInteger(quantity) || (quantity as number) < 1) {
      throw new HttpFailure(422, 'quantity must be a positive integer')
    }
    return { productId: productId.toLowerCase(), quantity: quantity as number }
  })
  if (new Set(lines.map((line) => line.productId)).size !== lines.length) {
    throw new HttpFailure(422, 'a product may appear on one line only')
  }
  return { customerId: customer_id.toLowerCase(), lines, notes: (notes as string) ?? null }
}

async function placeOrder(body: unknown, requestId: string, clientAddress: string | undefined) {
  const { customerId, lines, notes } = linesOf(body)
  const sql = placementFor(lines.length)
  const client = await pool.connect()
  try {
    await client.query('begin')
    const { rows } = await client.query<LockedRow>({
      text: sql.lock,
      values: [customerId, customerId, ...lines.map((line) => line.productId)],
      rowMode: 'array',
    })
    const first = rows[0]
    // As the service: with no product row to carry it, the customer is read on its own.
    const customer = first
      ? first[9] === null
        ? undefined
        : { name: first[9], isActive: first[10] }
      : (
          await client.query<{ name: string; is_active: boolean }>(
            'select "id", "name", "is_active" from "customers" where "customers"."id" = $1',
            [customerId],
          )
        ).rows.map((row) => ({ name: row.name, isActive: row.is_active }))[0]
    if (!customer?.isActive) throw new HttpFailure(422, 'customer_id is not an active customer')
    const catalogue = new Map(
      rows.map(([id, sku, name, , price, stock, isActive]) => [
        id,
        { sku, name, price, stock, isActive },
      ]),
    )
    const priced = lines.map((line) => {
      const product = catalogue.get(line.productId)
      if (!product?.isActive) throw new HttpFailure(422, 'a product is missing or not active')
      return { ...line, product, lineCents: toCents(product.price) * BigInt(line.quantity) }
    })
    const totalCents = priced.reduce((sum, line) => sum + line.lineCents, 0n)
    // The no-oversell check: read under the row lock, so no other order can take the units.
    if (priced.some((line) => line.product.stock < line.quantity)) {
      throw new HttpFailure(409, 'OUT_OF_STOCK')
    }

    const now = new Date()
    const orderId = randomUUID()
    const items = priced.map((line, position) => ({
      id: randomUUID(),
      productId: line.productId,
      productName: line.product.name,
      sku: line.product.sku,
      quantity: line.quantity,
      unitPrice: line.product.price,
      lineTotal: fromCents(line.lineCents),
      position,
    }))
    const total = fromCents(totalCents)
    const created = toOrder(
      {
        id: orderId,
        customer_id: customerId,
        created_by: createdBy as string,
        status: 'pending',
        total,
        notes,
        created_at: now,
        updated_at: now,
        name: customer.name,
      },
      items,
    )
    const changes = Object.fromEntries(
      Object.entries({
        customer_id: customerId,
        status: 'pending',
        items: created.items,
        total,
        notes,
      }).map(([field, after]) => [field, { after }]),
    )
    await client.query(sql.write, [
      ...lines.flatMap((line) => [line.productId, -line.quantity]),
      now,
      ...lines.map((line) => line.productId),
      orderId,
      customerId,
      createdBy,
      'pending',
      total,
      notes,
      now,
      now,
      ...items.flatMap((item) => [
        item.id,
        orderId,
        item.productId,
        item.productName,
        item.sku,
        item.quantity,
        item.unitPrice,
        item.lineTotal,
        item.position,
      ]),
      createdBy,
      null,
      'create',
      'order',
      orderId,
      JSON.stringify(changes),
      requestId,
      clientAddress ?? null,
    ])
    await client.query('commit')
    return created
  } catch (error) {
    await client.query('rollback')
    throw error
  } finally {
    client.release()
  }
}

let requests = 0

await serve(
  async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://ceiling')
    if (request.method === 'GET' && url.pathname === '/health') return answerHealth(response)
    if (url.pathname === '/v1/orders' && request.method === 'POST') {
      const requestId = `ceiling-${++requests}`
      const order = await placeOrder(
        await readJson(request),
        requestId,
        request.socket.remoteAddress,
      )
      return sendJson(response, 201, order, { location: `/v1/orders/${order.id}` })
    }
    if (request.method !== 'GET') throw new HttpFailure(404, 'no such route')
    if (url.pathname === '/v1/orders')
      return sendJson(response, 200, await listOrders(url.searchParams))
    if (url.pathname.startsWith('/v1/orders/')) {
      return sendJson(response, 200, await readOrder(url.pathname.slice('/v1/orders/'.length)))
    }
    throw new HttpFailure(404, 'no such route')
  },
  () => pool.end(),
)
