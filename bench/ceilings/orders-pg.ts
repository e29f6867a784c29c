/**
 * The ceiling of the order routes: node:http and node-postgres sending the statements the
 * order repository sends today (src/modules/orders), as named prepared statements, with
 * the checks the service makes and the answer it gives — no framework, no auth, no ORM. It
 * serves the service's paths, so the bench sends both the same requests.
 *
 *   GET  /v1/orders/{id}         the order with its customer's name, then its items: 2 queries
 *   GET  /v1/orders?page_size=n  a page newest first and the total at once, then the items
 *   POST /v1/orders              one transaction: customer, products locked in id order, the
 *                                no-oversell check, stock update, order row, items, audit row
 *
 * It reads as an admin does: every order is visible. Orders it places are created by
 * CREATED_BY (the bench admin), as the service's are.
 *
 *   DATABASE_URL       PostgreSQL (the ceiling always runs against a server)
 *   DATABASE_POOL_MAX  connections, as the service's setting of the same name
 *   CREATED_BY         the user id that placed orders and their audit rows name
 */
import { URL } from 'node:url'
import pg from 'pg'
import { fromCents, toCents } from '../../src/shared/money.js'
import { answerHealth, HttpFailure, readJson, sendJson, serve } from './http.js'

const ORDER_COLUMNS = `o.id, o.customer_id, o.created_by, o.status, o.total, o.notes,
  o.created_at, o.updated_at, c.name AS customer_name`
const ITEM_COLUMNS =
  'id, order_id, product_id, product_name, sku, quantity, unit_price, line_total, position'

const SQL = {
  order: `SELECT ${ORDER_COLUMNS} FROM orders o JOIN customers c ON c.id = o.customer_id
    WHERE o.id = $1`,
  items: `SELECT ${ITEM_COLUMNS} FROM order_items WHERE order_id = ANY($1::uuid[])
    ORDER BY order_id, position`,
  page: `SELECT ${ORDER_COLUMNS} FROM orders o JOIN customers c ON c.id = o.customer_id
    ORDER BY o.created_at DESC, o.id DESC LIMIT $1 OFFSET $2`,
  count: 'SELECT count(*)::integer AS total FROM orders',
  customer: 'SELECT id, name, is_active FROM customers WHERE id = $1',
  lockProducts: `SELECT id, name, sku, price, stock, is_active FROM products
    WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`,
  takeStock: `UPDATE products SET stock = products.stock - d.quantity, updated_at = now()
    FROM unnest($1::uuid[], $2::integer[]) AS d(id, quantity) WHERE products.id = d.id`,
  insertOrder: `INSERT INTO orders (customer_id, created_by, status, total, notes)
    VALUES ($1, $2, 'pending', $3, $4) RETURNING id, status, total, notes, created_at, updated_at`,
  insertItems: `INSERT INTO order_items
      (order_id, product_id, product_name, sku, quantity, unit_price, line_total, position)
    SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::integer[], $6::numeric[],
      $7::numeric[], $8::integer[])
    RETURNING ${ITEM_COLUMNS}`,
  audit: `INSERT INTO audit_events
      (actor_user_id, request_id, client_address, action, resource_type, resource_id, changes)
    VALUES ($1, $2, $3, 'create', 'order', $4, $5)`,
} as const

type Statement = keyof typeof SQL

/** Named, so each connection parses and plans a statement once and then only binds it. */
function query<R extends pg.QueryResultRow>(
  client: pg.Pool | pg.PoolClient,
  name: Statement,
  values: unknown[],
) {
  return client.query<R>({ name, text: SQL[name], values })
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
  customer_name: string
}

interface ItemRow {
  id: string
  order_id: string
  product_id: string
  product_name: string
  sku: string
  quantity: number
  unit_price: string
  line_total: string
  position: number
}

interface ProductRow {
  id: string
  name: string
  sku: string
  price: string
  stock: number
  is_active: boolean
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const MAX_PAGE_SIZE = 100

const databaseUrl = process.env.DATABASE_URL
const createdBy = process.env.CREATED_BY
if (!databaseUrl) throw new Error('DATABASE_URL is not set')
if (!createdBy) throw new Error('CREATED_BY is not set')
const pool = new pg.Pool({
  connectionString: databaseUrl,
  max: Number(process.env.DATABASE_POOL_MAX ?? 10),
})
// Fail at start, not on the first request, when the database is unreachable.
await pool.query('SELECT 1')

function toItem(row: ItemRow) {
  return {
    id: row.id,
    product_id: row.product_id,
    product_name: row.product_name,
    sku: row.sku,
    quantity: row.quantity,
    unit_price: row.unit_price,
    line_total: row.line_total,
  }
}

function toOrder(row: Omit<OrderRow, 'customer_name'>, customerName: string, items: ItemRow[]) {
  return {
    id: row.id,
    customer_id: row.customer_id,
    customer_name: customerName,
    status: row.status,
    items: items.map(toItem),
    total: row.total,
    notes: row.notes,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  }
}

async function readOrder(id: string) {
  if (!UUID.test(id)) throw new HttpFailure(422, 'id must be a UUID')
  const { rows } = await query<OrderRow>(pool, 'order', [id])
  const [order] = rows
  if (!order) throw new HttpFailure(404, `Order ${id} does not exist.`)
  const items = await query<ItemRow>(pool, 'items', [[order.id]])
  return toOrder(order, order.customer_name, items.rows)
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
  const [orders, counted] = await Promise.all([
    query<OrderRow>(pool, 'page', [pageSize, (page - 1) * pageSize]),
    query<{ total: number }>(pool, 'count', []),
  ])
  const items = await query<ItemRow>(pool, 'items', [orders.rows.map((row) => row.id)])
  const byOrder = new Map<string, ItemRow[]>()
  for (const item of items.rows) {
    const lines = byOrder.get(item.order_id)
    if (lines) lines.push(item)
    else byOrder.set(item.order_id, [item])
  }
  const total = counted.rows[0]?.total ?? 0
  return {
    items: orders.rows.map((row) => toOrder(row, row.customer_name, byOrder.get(row.id) ?? [])),
    page,
    page_size: pageSize,
    total,
    total_pages: Math.ceil(total / pageSize),
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
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const customer = (
      await query<{ id: string; name: string; is_active: boolean }>(client, 'customer', [
        customerId,
      ])
    ).rows[0]
    const locked = await query<ProductRow>(client, 'lockProducts', [
      lines.map((line) => line.productId),
    ])
    const catalogue = new Map(locked.rows.map((product) => [product.id, product]))
    if (!customer?.is_active) throw new HttpFailure(422, 'customer_id is not an active customer')
    const priced = lines.map((line) => {
      const product = catalogue.get(line.productId)
      if (!product?.is_active) throw new HttpFailure(422, 'a product is missing or not active')
      // The no-oversell check: read under the row lock, so no other order can take the units.
      if (product.stock < line.quantity) throw new HttpFailure(409, 'OUT_OF_STOCK')
      return { ...line, product, lineCents: toCents(product.price) * BigInt(line.quantity) }
    })
    const totalCents = priced.reduce((sum, line) => sum + line.lineCents, 0n)

    await query(client, 'takeStock', [
      lines.map((line) => line.productId),
      lines.map((line) => line.quantity),
    ])
    const [order] = (
      await query<Omit<OrderRow, 'customer_id' | 'created_by' | 'customer_name'>>(
        client,
        'insertOrder',
        [customer.id, createdBy, fromCents(totalCents), notes],
      )
    ).rows
    if (!order) throw new Error('INSERT ... RETURNING returned no row')
    const items = await query<ItemRow>(client, 'insertItems', [
      order.id,
      priced.map((line) => line.productId),
      priced.map((line) => line.product.name),
      priced.map((line) => line.product.sku),
      priced.map((line) => line.quantity),
      priced.map((line) => line.product.price),
      priced.map((line) => fromCents(line.lineCents)),
      priced.map((_, position) => position),
    ])
    const created = toOrder(
      { ...order, customer_id: customer.id, created_by: createdBy as string },
      customer.name,
      items.rows.sort((a, b) => a.position - b.position),
    )
    const { customer_id, status, items: createdItems, total } = created
    const changes = Object.fromEntries(
      Object.entries({ customer_id, status, items: createdItems, total, notes }).map(
        ([field, after]) => [field, { after }],
      ),
    )
    await query(client, 'audit', [createdBy, requestId, clientAddress ?? null, created.id, changes])
    await client.query('COMMIT')
    return created
  } catch (error) {
    await client.query('ROLLBACK')
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
