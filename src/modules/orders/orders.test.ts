import { randomUUID } from 'node:crypto'
import { and, eq } from 'drizzle-orm'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { insertProduct, stockOf as stockIn } from '../../../test/catalog.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  testConfig,
  unique,
} from '../../../test/helpers.js'
import { buildApp } from '../../app.js'
import { PGliteThread } from '../../db/pglite-thread.js'
import { auditEvents, customers, orders, users } from '../../db/schema/index.js'

let t: TestApp
let admin: TestUser
let alice: TestUser
let bob: TestUser
let viewer: TestUser
let asAdmin: ReturnType<typeof injectAs>
let asAlice: ReturnType<typeof injectAs>
let asBob: ReturnType<typeof injectAs>
let asViewer: ReturnType<typeof injectAs>

beforeAll(async () => {
  // Without the auth cache every request looks its caller up: query counts do not depend on
  // whether a 5 s cache entry outlived a slow test.
  t = await buildTestApp({ AUTH_CACHE_TTL_MS: '0' })
  ;[admin, alice, bob, viewer] = await Promise.all([
    createTestUser(t, 'admin'),
    createTestUser(t, 'user'),
    createTestUser(t, 'user'),
    createTestUser(t, 'viewer'),
  ])
  asAdmin = injectAs(t, admin)
  asAlice = injectAs(t, alice)
  asBob = injectAs(t, bob)
  asViewer = injectAs(t, viewer)
})
afterAll(() => t.close())

type Inject = ReturnType<typeof injectAs>
interface OrderBody {
  id: string
  customer_id: string
  customer_name: string
  status: string
  items: {
    id: string
    product_id: string
    product_name: string
    sku: string
    quantity: number
    unit_price: string
    line_total: string
  }[]
  total: string
  notes: string | null
  created_by: string
  created_at: string
  updated_at: string
}

async function newCustomer(overrides: Partial<typeof customers.$inferInsert> = {}) {
  const [row] = await t.database.db
    .insert(customers)
    .values({
      name: `Customer ${unique()}`,
      email: `customer-${unique().toLowerCase()}@example.com`,
      ...overrides,
    })
    .returning()
  if (!row) throw new Error('no customer')
  return row
}

const newProduct = (values: Parameters<typeof insertProduct>[1] = {}) =>
  insertProduct(t, { sku: `ORD-${unique()}`, ...values })
const stockOf = (productId: string) => stockIn(t, productId)

function post(as: Inject, payload: unknown) {
  return as({ method: 'POST', url: '/v1/orders', payload: payload as object })
}

/** Places an order (alice's by default) and expects it to succeed. */
async function placeOrder(payload: Record<string, unknown>, as: Inject = asAlice) {
  const response = await post(as, payload)
  expect(response.statusCode, response.body).toBe(201)
  return response.json() as OrderBody
}

/** A customer and a product with stock, and a pending order of `quantity` of it. */
async function pendingOrder(quantity = 2, as: Inject = asAlice) {
  const customer = await newCustomer()
  const product = await newProduct({ stock: 10 })
  const order = await placeOrder(
    { customer_id: customer.id, items: [{ product_id: product.id, quantity }] },
    as,
  )
  return { customer, product, order }
}

function setStatus(as: Inject, id: string, status: string) {
  return as({ method: 'POST', url: `/v1/orders/${id}/status`, payload: { status } })
}

async function fetchOrder(id: string) {
  const response = await asAdmin({ url: `/v1/orders/${id}` })
  expect(response.statusCode).toBe(200)
  return response.json() as OrderBody
}

async function ordersOfCustomer(customerId: string) {
  return t.database.db.select().from(orders).where(eq(orders.customerId, customerId))
}

const eventsFor = (orderId: string) =>
  t.database.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.resourceType, 'order'), eq(auditEvents.resourceId, orderId)))
    .orderBy(auditEvents.at)

const paths = (body: { errors?: { path: string }[] }) => (body.errors ?? []).map((e) => e.path)

describe('POST /v1/orders', () => {
  it('places an order and answers 201 with Location and the full order', async () => {
    const customer = await newCustomer({ name: 'Grace Hopper' })
    const lamp = await newProduct({ name: 'Desk lamp', price: '19.90', stock: 10 })
    const chair = await newProduct({ name: 'Office chair', price: '120.00', stock: 3 })

    const response = await post(asAlice, {
      customer_id: customer.id,
      items: [
        { product_id: lamp.id, quantity: 2 },
        { product_id: chair.id, quantity: 1 },
      ],
      notes: 'Leave at the back door.',
    })

    expect(response.statusCode).toBe(201)
    const order = response.json() as OrderBody
    expect(response.headers.location).toBe(`/v1/orders/${order.id}`)
    expect(order).toMatchObject({
      customer_id: customer.id,
      customer_name: 'Grace Hopper',
      status: 'pending',
      total: '159.80',
      notes: 'Leave at the back door.',
      created_by: alice.id,
    })
    expect(order.items).toEqual([
      {
        id: expect.any(String),
        product_id: lamp.id,
        product_name: 'Desk lamp',
        sku: lamp.sku,
        quantity: 2,
        unit_price: '19.90',
        line_total: '39.80',
      },
      {
        id: expect.any(String),
        product_id: chair.id,
        product_name: 'Office chair',
        sku: chair.sku,
        quantity: 1,
        unit_price: '120.00',
        line_total: '120.00',
      },
    ])
    expect(new Date(order.created_at).toISOString()).toBe(order.created_at)
    expect(order.updated_at).toBe(order.created_at)
    expect(await fetchOrder(order.id)).toEqual(order)
    expect(await stockOf(lamp.id)).toBe(8)
    expect(await stockOf(chair.id)).toBe(2)
  })

  it('computes money exactly: 3 x 0.10 + 1 x 0.20 totals "0.50"', async () => {
    const customer = await newCustomer()
    const dime = await newProduct({ price: '0.10' })
    const twenty = await newProduct({ price: '0.20' })
    const order = await placeOrder({
      customer_id: customer.id,
      items: [
        { product_id: dime.id, quantity: 3 },
        { product_id: twenty.id, quantity: 1 },
      ],
    })
    expect(order.items.map((item) => item.line_total)).toEqual(['0.30', '0.20'])
    expect(order.total).toBe('0.50')
  })

  it('keeps the largest prices exact to the cent', async () => {
    const customer = await newCustomer()
    const dear = await newProduct({ price: '9999999999.99' })
    const cheap = await newProduct({ price: '0.01' })
    const order = await placeOrder({
      customer_id: customer.id,
      items: [
        { product_id: dear.id, quantity: 19 },
        { product_id: cheap.id, quantity: 1 },
      ],
    })
    expect(order.items[0]?.line_total).toBe('189999999999.81')
    expect(order.total).toBe('189999999999.82')
  })

  it('copies price, name and sku at order time, so later catalogue edits leave it alone', async () => {
    const { product, order } = await pendingOrder(1)
    const edit = await asAdmin({
      method: 'PATCH',
      url: `/v1/products/${product.id}`,
      payload: { price: '99.00', name: 'Renamed lamp', sku: `NEW-${unique()}` },
    })
    expect(edit.statusCode).toBe(200)
    expect((await fetchOrder(order.id)).items[0]).toMatchObject({
      product_name: product.name,
      sku: product.sku,
      unit_price: product.price,
    })
  })

  it('accepts UUIDs in capitals and answers them in lower case', async () => {
    const customer = await newCustomer()
    const product = await newProduct()
    const order = await placeOrder({
      customer_id: customer.id.toUpperCase(),
      items: [{ product_id: product.id.toUpperCase(), quantity: 1 }],
    })
    expect(order.customer_id).toBe(customer.id)
    expect(order.items[0]?.product_id).toBe(product.id)
  })

  it('accepts notes of exactly 500 characters, null notes and no notes at all', async () => {
    const customer = await newCustomer()
    const product = await newProduct()
    const items = [{ product_id: product.id, quantity: 1 }]
    const long = await placeOrder({ customer_id: customer.id, items, notes: 'n'.repeat(500) })
    expect(long.notes).toHaveLength(500)
    const none = await placeOrder({ customer_id: customer.id, items })
    expect(none.notes).toBeNull()
    const empty = await placeOrder({ customer_id: customer.id, items, notes: null })
    expect(empty.notes).toBeNull()
  })

  it.each([
    ['no items', { items: undefined }, 'body.items'],
    ['an empty items list', { items: [] }, 'body.items'],
    ['a quantity of 0', { items: [{ quantity: 0 }] }, 'body.items[0].quantity'],
    ['a negative quantity', { items: [{ quantity: -1 }] }, 'body.items[0].quantity'],
    ['a fractional quantity', { items: [{ quantity: 1.5 }] }, 'body.items[0].quantity'],
    ['a quantity sent as a string', { items: [{ quantity: '2' }] }, 'body.items[0].quantity'],
    ['a missing quantity', { items: [{ quantity: undefined }] }, 'body.items[0].quantity'],
    [
      'a product id that is not a UUID',
      { items: [{}, { product_id: 'lamp', quantity: 1 }] },
      'body.items[1].product_id',
    ],
    ['a price sent by the client', { items: [{ unit_price: '0.01' }] }, 'body.items[0].unit_price'],
    ['a customer id that is not a UUID', { customer_id: '42' }, 'body.customer_id'],
    ['no customer', { customer_id: undefined }, 'body.customer_id'],
    ['notes of 501 characters', { notes: 'n'.repeat(501) }, 'body.notes'],
    ['a server-owned field', { status: 'delivered' }, 'body.status'],
    ['a total sent by the client', { total: '0.01' }, 'body.total'],
  ])('rejects %s with 422 naming the field, and takes no stock', async (_case, overrides, path) => {
    const customer = await newCustomer()
    const product = await newProduct({ stock: 5 })
    const { items, ...rest } = overrides as { items?: Record<string, unknown>[] }
    const payload = {
      customer_id: customer.id,
      items:
        'items' in overrides
          ? items?.map((item) => ({ product_id: product.id, quantity: 1, ...item }))
          : [{ product_id: product.id, quantity: 1 }],
      ...rest,
    }

    const response = await post(asAlice, payload)

    expect(response.statusCode).toBe(422)
    expect(response.json()).toMatchObject({ status: 422, code: 'VALIDATION_FAILED' })
    expect(paths(response.json())).toContain(path)
    expect(await stockOf(product.id)).toBe(5)
    expect(await ordersOfCustomer(customer.id)).toEqual([])
  })

  it('rejects a product listed twice with 422 naming both positions', async () => {
    const customer = await newCustomer()
    const [lamp, chair] = [await newProduct({ stock: 5 }), await newProduct({ stock: 5 })]
    const response = await post(asAlice, {
      customer_id: customer.id,
      items: [
        { product_id: lamp.id, quantity: 1 },
        { product_id: chair.id, quantity: 1 },
        { product_id: lamp.id.toUpperCase(), quantity: 2 },
      ],
    })

    expect(response.statusCode).toBe(422)
    const errors = response.json().errors as { path: string; message: string }[]
    expect(errors.map((e) => e.path)).toEqual([
      'body.items[0].product_id',
      'body.items[2].product_id',
    ])
    for (const error of errors) expect(error.message).toContain('items[0], items[2]')
    expect(await stockOf(lamp.id)).toBe(5)
    expect(await ordersOfCustomer(customer.id)).toEqual([])
  })

  it('accepts 20 units in total and rejects 21 with 422 on body.items', async () => {
    const customer = await newCustomer()
    const [lamp, chair] = [await newProduct({ stock: 30 }), await newProduct({ stock: 30 })]
    const at = (first: number, second: number) => ({
      customer_id: customer.id,
      items: [
        { product_id: lamp.id, quantity: first },
        { product_id: chair.id, quantity: second },
      ],
    })

    expect((await post(asAlice, at(15, 5))).statusCode).toBe(201)
    const response = await post(asAlice, at(15, 6))
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'body.items', message: 'must hold at most 20 units in total (has 21)' },
    ])
    expect(await stockOf(lamp.id)).toBe(15)
    expect(await stockOf(chair.id)).toBe(25)
  })

  it('takes the unit limit from ORDER_MAX_TOTAL_QUANTITY', async () => {
    const app = await buildApp(testConfig({ ORDER_MAX_TOTAL_QUANTITY: '3' }), {
      database: t.database,
    })
    try {
      const customer = await newCustomer()
      const product = await newProduct()
      const order = (quantity: number) =>
        app.inject({
          method: 'POST',
          url: '/v1/orders',
          headers: alice.headers,
          payload: { customer_id: customer.id, items: [{ product_id: product.id, quantity }] },
        })
      expect((await order(3)).statusCode).toBe(201)
      const refused = await order(4)
      expect(refused.statusCode).toBe(422)
      expect(refused.json().errors[0].message).toContain('at most 3 units')
    } finally {
      await app.close()
    }
  })

  it('refuses an order whose total would not fit NUMERIC(14,2) with 422, before taking stock', async () => {
    const app = await buildApp(testConfig({ ORDER_MAX_TOTAL_QUANTITY: '200' }), {
      database: t.database,
    })
    try {
      const customer = await newCustomer()
      const product = await newProduct({ price: '9999999999.99', stock: 300 })
      const order = (quantity: number) =>
        app.inject({
          method: 'POST',
          url: '/v1/orders',
          headers: alice.headers,
          payload: { customer_id: customer.id, items: [{ product_id: product.id, quantity }] },
        })
      const largest = await order(100)
      expect(largest.statusCode).toBe(201)
      expect(largest.json().total).toBe('999999999999.00')
      const refused = await order(101)
      expect(refused.statusCode).toBe(422)
      expect(refused.json().errors).toEqual([
        { path: 'body.items', message: 'must total at most 999999999999.99' },
      ])
      expect(await stockOf(product.id)).toBe(200)
    } finally {
      await app.close()
    }
  })

  it.each([
    ['an unknown customer', { id: randomUUID() }, 'does not exist'],
    ['an inactive customer', { isActive: false }, 'is not active'],
  ])('rejects %s with 422 on body.customer_id', async (_case, customerCase, message) => {
    const customerId =
      'id' in customerCase ? customerCase.id : (await newCustomer({ isActive: false })).id
    const product = await newProduct({ stock: 5 })
    const response = await post(asAlice, {
      customer_id: customerId,
      items: [{ product_id: product.id, quantity: 1 }],
    })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([{ path: 'body.customer_id', message }])
    expect(await stockOf(product.id)).toBe(5)
  })

  it.each([
    ['an active customer', true, []],
    ['an inactive customer', false, [{ path: 'body.customer_id', message: 'is not active' }]],
  ])(
    'when no product of the order exists, then it still judges %s',
    async (_case, isActive, customerErrors) => {
      const customer = await newCustomer({ isActive })
      const response = await post(asAlice, {
        customer_id: customer.id,
        items: [{ product_id: randomUUID(), quantity: 1 }],
      })
      expect(response.statusCode).toBe(422)
      expect(response.json().errors).toEqual([
        ...customerErrors,
        { path: 'body.items[0].product_id', message: 'does not exist' },
      ])
    },
  )

  it('rejects unknown and inactive products with 422 naming each line, all at once', async () => {
    const customer = await newCustomer()
    const active = await newProduct({ stock: 5 })
    const inactive = await newProduct({ stock: 5, isActive: false })
    const response = await post(asAlice, {
      customer_id: customer.id,
      items: [
        { product_id: active.id, quantity: 1 },
        { product_id: randomUUID(), quantity: 1 },
        { product_id: inactive.id, quantity: 1 },
      ],
    })

    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'body.items[1].product_id', message: 'does not exist' },
      { path: 'body.items[2].product_id', message: 'is not active' },
    ])
    expect(await stockOf(active.id)).toBe(5)
    expect(await ordersOfCustomer(customer.id)).toEqual([])
  })

  it('rejects an order whose products lack stock with 409 OUT_OF_STOCK naming every short line, and takes nothing', async () => {
    const customer = await newCustomer()
    const plenty = await newProduct({ stock: 10 })
    const few = await newProduct({ stock: 2 })
    const none = await newProduct({ stock: 0 })
    const response = await post(asAlice, {
      customer_id: customer.id,
      items: [
        { product_id: plenty.id, quantity: 5 },
        { product_id: few.id, quantity: 3 },
        { product_id: none.id, quantity: 1 },
      ],
    })

    expect(response.statusCode).toBe(409)
    const problem = response.json()
    expect(problem).toMatchObject({ status: 409, code: 'OUT_OF_STOCK' })
    expect(problem.detail).toContain('body.items[1]')
    expect(problem.lines).toEqual([
      { path: 'body.items[1]', product_id: few.id, sku: few.sku, requested: 3, available: 2 },
      { path: 'body.items[2]', product_id: none.id, sku: none.sku, requested: 1, available: 0 },
    ])
    expect(await stockOf(plenty.id)).toBe(10)
    expect(await stockOf(few.id)).toBe(2)
    expect(await ordersOfCustomer(customer.id)).toEqual([])
  })

  it('sells the last unit: an order for exactly the stock succeeds and leaves 0', async () => {
    const customer = await newCustomer()
    const product = await newProduct({ stock: 4 })
    await placeOrder({ customer_id: customer.id, items: [{ product_id: product.id, quantity: 4 }] })
    expect(await stockOf(product.id)).toBe(0)
  })

  it('records the creation in the audit log, in the same transaction', async () => {
    const { order } = await pendingOrder(2)
    const [event, ...rest] = await eventsFor(order.id)
    expect(rest).toEqual([])
    expect(event).toMatchObject({ action: 'create', actorUserId: alice.id })
    expect(event?.changes).toMatchObject({
      customer_id: { after: order.customer_id },
      status: { after: 'pending' },
      total: { after: order.total },
      items: { after: order.items },
    })
  })
})

describe('GET /v1/orders/{id}', () => {
  it('answers 404 ORDER_NOT_FOUND for an unknown id', async () => {
    const response = await asAdmin({ url: `/v1/orders/${randomUUID()}` })
    expect(response.statusCode).toBe(404)
    expect(response.json()).toMatchObject({ code: 'ORDER_NOT_FOUND', status: 404 })
  })

  it('answers 422 for an id that is not a UUID', async () => {
    const response = await asAdmin({ url: '/v1/orders/42' })
    expect(response.statusCode).toBe(422)
    expect(paths(response.json())).toContain('params.id')
  })
})

describe('GET /v1/orders', () => {
  // One customer for this block; every query filters by it, so orders that other tests
  // (or other files, in a shared database) create never reach the assertions.
  let customer: Awaited<ReturnType<typeof newCustomer>>
  let placed: OrderBody[]
  const days = ['2021-03-01', '2021-03-02', '2021-03-03', '2021-03-04', '2021-03-05']

  beforeAll(async () => {
    customer = await newCustomer({ name: `Ada Byron ${unique()}` })
    const cheap = await newProduct({ price: '5.00', stock: 100 })
    const dear = await newProduct({ price: '100.00', stock: 100 })
    const specs = [
      { product: cheap, quantity: 1, notes: 'gift wrap please' }, // 5.00
      { product: dear, quantity: 1, notes: null }, // 100.00
      { product: cheap, quantity: 4, notes: 'ring the bell' }, // 20.00
      { product: dear, quantity: 2, notes: 'GIFT for Ada' }, // 200.00
      { product: cheap, quantity: 4, notes: null }, // 20.00
    ]
    placed = []
    for (const [i, spec] of specs.entries()) {
      const order = await placeOrder({
        customer_id: customer.id,
        items: [{ product_id: spec.product.id, quantity: spec.quantity }],
        ...(spec.notes ? { notes: spec.notes } : {}),
      })
      // Fixed creation times make the time filters and the default sort deterministic.
      await t.database.db
        .update(orders)
        .set({ createdAt: new Date(`${days[i]}T12:00:00Z`) })
        .where(eq(orders.id, order.id))
      placed.push(order)
    }
    const [first, second, third] = placed as [OrderBody, OrderBody, OrderBody]
    expect((await setStatus(asAlice, second.id, 'processing')).statusCode).toBe(200)
    expect((await setStatus(asAlice, third.id, 'cancelled')).statusCode).toBe(200)
    expect((await setStatus(asAlice, first.id, 'processing')).statusCode).toBe(200)
    expect((await setStatus(asAlice, first.id, 'shipped')).statusCode).toBe(200)
  })

  async function list(query: string, as: Inject = asAlice) {
    const response = await as({ url: `/v1/orders?customer_id=${customer.id}&${query}` })
    expect(response.statusCode, response.body).toBe(200)
    return response.json() as { items: OrderBody[]; total: number; page: number }
  }
  /** Positions (0-4) of the orders in `placed`, in the order a page lists them. */
  const which = (page: { items: OrderBody[] }) =>
    page.items.map((order) => placed.findIndex((p) => p.id === order.id))

  it('lists newest first by default, each order with its items and customer name', async () => {
    const page = await list('')
    expect(page).toMatchObject({ total: 5, page: 1, page_size: 20, total_pages: 1 })
    expect(which(page)).toEqual([4, 3, 2, 1, 0])
    const fourth = page.items[1]
    expect(fourth).toMatchObject({ customer_name: customer.name, total: '200.00' })
    expect(fourth?.items).toEqual(placed[3]?.items)
  })

  it('pages with page and page_size and reports the totals', async () => {
    const second = await list('page=2&page_size=2&sort=created_at')
    expect(second).toMatchObject({ page: 2, page_size: 2, total: 5, total_pages: 3 })
    expect(which(second)).toEqual([2, 3])
  })

  it('counts a page exactly up to ORDER_COUNT_EXACT_MAX and says so', async () => {
    expect(await list('page_size=2')).toMatchObject({ total: 5, total_is_estimate: false })
  })

  it('when more orders match than ORDER_COUNT_EXACT_MAX, then the total is an estimate no lower than the orders paged through', async () => {
    const app = await buildApp(testConfig({ ORDER_COUNT_EXACT_MAX: '3' }), {
      database: t.database,
    })
    try {
      const page = async (query: string) => {
        const response = await app.inject({
          url: `/v1/orders?customer_id=${customer.id}&${query}`,
          headers: alice.headers,
        })
        expect(response.statusCode, response.body).toBe(200)
        return response.json() as { items: OrderBody[]; total: number; total_pages: number }
      }
      const first = await page('page_size=2&sort=created_at')
      expect(first).toMatchObject({ total_is_estimate: true })
      expect(first.total).toBeGreaterThanOrEqual(4)
      expect(first.total_pages).toBe(Math.ceil(first.total / 2))
      expect(which(first)).toEqual([0, 1])
      const last = await page('page=3&page_size=2&sort=created_at')
      expect(last.total).toBeGreaterThanOrEqual(5)
      expect(which(last)).toEqual([4])
      // Three of the five are at most 20.00: no more than the exact limit, so counted exactly.
      const cheap = await page('max_total=20.00')
      expect(cheap).toMatchObject({ total: 3, total_is_estimate: false })
    } finally {
      await app.close()
    }
  })

  it('sorts by total both ways, ties broken stably', async () => {
    const ascending = which(await list('sort=total'))
    expect(ascending.slice(0, 1)).toEqual([0])
    expect(ascending.slice(1, 3).sort()).toEqual([2, 4])
    expect(ascending.slice(3)).toEqual([1, 3])
    expect(which(await list('sort=-total'))).toEqual([...ascending].reverse())
  })

  it('sorts by status in lifecycle order: pending, processing, shipped, delivered, cancelled', async () => {
    const statuses = (await list('sort=status')).items.map((order) => order.status)
    expect(statuses).toEqual(['pending', 'pending', 'processing', 'shipped', 'cancelled'])
    const reversed = (await list('sort=-status')).items.map((order) => order.status)
    expect(reversed).toEqual([...statuses].reverse())
  })

  it('filters by status', async () => {
    expect(which(await list('status=pending&sort=created_at'))).toEqual([3, 4])
    expect(which(await list('status=cancelled'))).toEqual([2])
    expect((await list('status=delivered')).total).toBe(0)
  })

  it('filters by an inclusive creation window', async () => {
    const window = 'created_from=2021-03-02T12:00:00Z&created_to=2021-03-04T12:00:00Z'
    expect(which(await list(`${window}&sort=created_at`))).toEqual([1, 2, 3])
    expect(which(await list('created_from=2021-03-05T00:00:00Z'))).toEqual([4])
    expect(which(await list('created_to=2021-03-01T23:59:59.999Z'))).toEqual([0])
  })

  it('filters by an inclusive total range', async () => {
    expect(which(await list('min_total=20&max_total=100&sort=created_at'))).toEqual([1, 2, 4])
    expect(which(await list('min_total=100.01'))).toEqual([3])
  })

  it('searches notes and customer name case-insensitively with q', async () => {
    expect(which(await list('q=gift&sort=created_at'))).toEqual([0, 3])
    expect((await list(`q=${encodeURIComponent(customer.name.toUpperCase())}`)).total).toBe(5)
    expect((await list('q=nothing-like-this')).total).toBe(0)
    expect((await list(`q=${encodeURIComponent('%')}`)).total).toBe(0)
  })

  it('rejects created_from after created_to with 422', async () => {
    const response = await asAlice({
      url: '/v1/orders?created_from=2021-03-05T00:00:00Z&created_to=2021-03-04T00:00:00Z',
    })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'query.created_from', message: 'must not be after created_to' },
    ])
  })

  it('rejects min_total above max_total with 422', async () => {
    const response = await asAlice({ url: '/v1/orders?min_total=10.01&max_total=10' })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'query.min_total', message: 'must not exceed max_total' },
    ])
  })

  it.each([
    'page_size=101',
    'page=0',
    'status=lost',
    'customer_id=42',
    'created_from=yesterday',
    'created_to=2021-03-05',
    'min_total=1.234',
    'max_total=-1',
    'sort=notes',
    'q=',
    'limit=5',
  ])('rejects %s with 422 naming the parameter', async (query) => {
    const response = await asAlice({ url: `/v1/orders?${query}` })
    expect(response.statusCode).toBe(422)
    expect(paths(response.json())[0]).toMatch(/^query\./)
  })
})

const JOBS_POLL = /\b(from|update|into)\s+"?jobs"?(\s|$)/i
const sqlText = (statement: unknown) =>
  typeof statement === 'string' ? statement : String((statement as { text?: string })?.text ?? '')

describe('GET /v1/orders without N+1 queries', () => {
  /**
   * Counts the statements the app sends to the database while `work` runs, at the driver:
   * the PGlite thread's `query` in embedded mode, node-postgres' `Client#query` in services mode
   * (pool queries go through a client too). Test-only: nothing in src/ knows about it.
   */
  async function countQueries(work: () => Promise<unknown>): Promise<number> {
    const spy =
      t.database.kind === 'embedded'
        ? vi.spyOn(PGliteThread.prototype, 'query')
        : vi.spyOn(pg.Client.prototype, 'query')
    try {
      await work()
      // The job runner's and the outbox relay's polls share the driver and may land while a
      // slow page runs; they are not the request's.
      return spy.mock.calls.filter(([statement]) => !JOBS_POLL.test(sqlText(statement))).length
    } finally {
      spy.mockRestore()
    }
  }

  it('reads a page of 5 and a page of 50 orders in the same small number of queries', async () => {
    const customer = await newCustomer()
    const lamp = await newProduct({ stock: 1000 })
    const chair = await newProduct({ stock: 1000 })
    for (let i = 0; i < 50; i++) {
      await placeOrder({
        customer_id: customer.id,
        items: [
          { product_id: lamp.id, quantity: 1 },
          { product_id: chair.id, quantity: 2 },
        ],
      })
    }
    const page = (size: number) => async () => {
      const response = await asAlice({
        url: `/v1/orders?customer_id=${customer.id}&page_size=${size}`,
      })
      expect(response.statusCode).toBe(200)
      const body = response.json()
      expect(body.items).toHaveLength(size)
      for (const order of body.items) expect(order.items).toHaveLength(2)
    }

    const small = await countQueries(page(5))
    const large = await countQueries(page(50))
    expect(large).toBe(small)
    // Authentication's lookups of the caller, then the page with its items aggregated in the
    // same statement, and its count.
    expect(large).toBeLessThanOrEqual(4)
  })
})

describe('PATCH /v1/orders/{id}', () => {
  it('changes the notes, moves updated_at and records the change', async () => {
    const { order } = await pendingOrder()
    const response = await asAlice({
      method: 'PATCH',
      url: `/v1/orders/${order.id}`,
      payload: { notes: 'Call before delivery.' },
    })

    expect(response.statusCode).toBe(200)
    const updated = response.json() as OrderBody
    expect(updated).toEqual({
      ...order,
      notes: 'Call before delivery.',
      updated_at: updated.updated_at,
    })
    expect(Date.parse(updated.updated_at)).toBeGreaterThanOrEqual(Date.parse(order.updated_at))
    const events = await eventsFor(order.id)
    expect(events.map((e) => e.action)).toEqual(['create', 'update'])
    expect(events[1]?.changes).toEqual({ notes: { before: null, after: 'Call before delivery.' } })
  })

  it('clears the notes with null', async () => {
    const customer = await newCustomer()
    const product = await newProduct()
    const order = await placeOrder({
      customer_id: customer.id,
      items: [{ product_id: product.id, quantity: 1 }],
      notes: 'temporary',
    })
    const response = await asAlice({
      method: 'PATCH',
      url: `/v1/orders/${order.id}`,
      payload: { notes: null },
    })
    expect(response.json().notes).toBeNull()
  })

  it.each([
    ['an empty body', {}, 'body.notes'],
    ['the status', { status: 'shipped' }, 'body.status'],
    ['the items', { items: [] }, 'body.items'],
    ['the customer', { customer_id: randomUUID() }, 'body.customer_id'],
    ['the total', { total: '0.01' }, 'body.total'],
    ['notes with another field', { notes: 'ok', created_by: randomUUID() }, 'body.created_by'],
    ['notes of 501 characters', { notes: 'n'.repeat(501) }, 'body.notes'],
  ])('rejects %s with 422 and changes nothing', async (_case, payload, path) => {
    const { order } = await pendingOrder()
    const response = await asAlice({ method: 'PATCH', url: `/v1/orders/${order.id}`, payload })
    expect(response.statusCode).toBe(422)
    expect(paths(response.json())).toContain(path)
    expect(await fetchOrder(order.id)).toEqual(order)
  })

  it('answers 404 for an unknown id', async () => {
    const response = await asAlice({
      method: 'PATCH',
      url: `/v1/orders/${randomUUID()}`,
      payload: { notes: 'x' },
    })
    expect(response.statusCode).toBe(404)
  })
})

describe('POST /v1/orders/{id}/status', () => {
  it('walks pending -> processing -> shipped -> delivered, recording each change', async () => {
    const { order, product } = await pendingOrder(3)
    let previous = order
    for (const status of ['processing', 'shipped', 'delivered']) {
      const response = await setStatus(asAlice, order.id, status)
      expect(response.statusCode).toBe(200)
      const moved = response.json() as OrderBody
      expect(moved).toEqual({ ...previous, status, updated_at: moved.updated_at })
      previous = moved
    }
    expect(await stockOf(product.id)).toBe(7)

    const events = await eventsFor(order.id)
    expect(events.map((e) => [e.action, e.changes])).toEqual([
      ['create', expect.any(Object)],
      ['status_change', { status: { before: 'pending', after: 'processing' } }],
      ['status_change', { status: { before: 'processing', after: 'shipped' } }],
      ['status_change', { status: { before: 'shipped', after: 'delivered' } }],
    ])
  })

  it.each([
    ['pending', 'shipped', ['processing', 'cancelled']],
    ['pending', 'delivered', ['processing', 'cancelled']],
    ['pending', 'pending', ['processing', 'cancelled']],
    ['processing', 'pending', ['shipped', 'cancelled']],
    ['processing', 'delivered', ['shipped', 'cancelled']],
    ['shipped', 'cancelled', ['delivered']],
    ['shipped', 'processing', ['delivered']],
    ['delivered', 'cancelled', []],
    ['cancelled', 'processing', []],
    ['cancelled', 'cancelled', []],
  ])('refuses %s -> %s with 409 listing the allowed next states', async (from, to, allowed) => {
    const { order, product } = await pendingOrder(2)
    const path: Record<string, string[]> = {
      pending: [],
      processing: ['processing'],
      shipped: ['processing', 'shipped'],
      delivered: ['processing', 'shipped', 'delivered'],
      cancelled: ['cancelled'],
    }
    for (const step of path[from] ?? []) {
      expect((await setStatus(asAlice, order.id, step)).statusCode).toBe(200)
    }
    const before = await fetchOrder(order.id)
    const stock = await stockOf(product.id)

    const response = await setStatus(asAlice, order.id, to)

    expect(response.statusCode).toBe(409)
    expect(response.json()).toMatchObject({
      code: 'INVALID_STATUS_TRANSITION',
      current_status: from,
      requested_status: to,
      allowed_next: allowed,
    })
    expect(await fetchOrder(order.id)).toEqual(before)
    expect(await stockOf(product.id)).toBe(stock)
  })

  it('cancelling a pending order puts its units back in stock', async () => {
    const customer = await newCustomer()
    const [lamp, chair] = [await newProduct({ stock: 10 }), await newProduct({ stock: 4 })]
    const order = await placeOrder({
      customer_id: customer.id,
      items: [
        { product_id: lamp.id, quantity: 3 },
        { product_id: chair.id, quantity: 4 },
      ],
    })
    expect([await stockOf(lamp.id), await stockOf(chair.id)]).toEqual([7, 0])

    const response = await setStatus(asAlice, order.id, 'cancelled')

    expect(response.statusCode).toBe(200)
    expect(response.json().status).toBe('cancelled')
    expect([await stockOf(lamp.id), await stockOf(chair.id)]).toEqual([10, 4])
  })

  it('cancelling a processing order puts its units back in stock', async () => {
    const { order, product } = await pendingOrder(6)
    expect((await setStatus(asAlice, order.id, 'processing')).statusCode).toBe(200)
    expect(await stockOf(product.id)).toBe(4)
    expect((await setStatus(asAlice, order.id, 'cancelled')).statusCode).toBe(200)
    expect(await stockOf(product.id)).toBe(10)
  })

  it('rejects an unknown status with 422 on body.status', async () => {
    const { order } = await pendingOrder()
    const response = await setStatus(asAlice, order.id, 'lost')
    expect(response.statusCode).toBe(422)
    expect(paths(response.json())).toEqual(['body.status'])
  })

  it('answers 404 for an unknown id', async () => {
    expect((await setStatus(asAlice, randomUUID(), 'cancelled')).statusCode).toBe(404)
  })
})

describe('DELETE /v1/orders/{id} (admin)', () => {
  it('deletes a pending order with 204, returns its stock and records the deletion', async () => {
    const { order, product } = await pendingOrder(4)
    expect(await stockOf(product.id)).toBe(6)

    const response = await asAdmin({ method: 'DELETE', url: `/v1/orders/${order.id}` })

    expect(response.statusCode).toBe(204)
    expect(response.body).toBe('')
    expect((await asAdmin({ url: `/v1/orders/${order.id}` })).statusCode).toBe(404)
    expect(await stockOf(product.id)).toBe(10)
    const events = await eventsFor(order.id)
    expect(events.map((e) => e.action)).toEqual(['create', 'delete'])
    expect(events[1]).toMatchObject({ actorUserId: admin.id })
    expect(events[1]?.changes).toMatchObject({
      status: { before: 'pending' },
      total: { before: order.total },
      items: { before: order.items },
    })
    expect((await asAdmin({ method: 'DELETE', url: `/v1/orders/${order.id}` })).statusCode).toBe(
      404,
    )
  })

  it.each([
    ['shipped', ['processing', 'shipped'], 6],
    ['delivered', ['processing', 'shipped', 'delivered'], 6],
    ['cancelled', ['cancelled'], 10],
  ])('leaves stock alone when deleting a %s order', async (_status, steps, stockAfter) => {
    const { order, product } = await pendingOrder(4)
    for (const step of steps) {
      expect((await setStatus(asAlice, order.id, step)).statusCode).toBe(200)
    }
    expect(await stockOf(product.id)).toBe(stockAfter)
    expect((await asAdmin({ method: 'DELETE', url: `/v1/orders/${order.id}` })).statusCode).toBe(
      204,
    )
    expect(await stockOf(product.id)).toBe(stockAfter)
  })

  it('refuses the owner and viewers with 403 and keeps the order', async () => {
    const { order } = await pendingOrder()
    for (const as of [asAlice, asViewer]) {
      const response = await as({ method: 'DELETE', url: `/v1/orders/${order.id}` })
      expect(response.statusCode).toBe(403)
      expect(response.json().code).toBe('FORBIDDEN')
    }
    expect(await fetchOrder(order.id)).toEqual(order)
  })
})

describe('ownership', () => {
  it('hides another user’s order on every route with 404, exactly like a missing one, and leaves it unchanged', async () => {
    const { order, product } = await pendingOrder(2, asAlice)
    const stock = await stockOf(product.id)
    const missing = randomUUID()

    for (const id of [order.id, missing]) {
      const answers = [
        await asBob({ url: `/v1/orders/${id}` }),
        await asBob({ method: 'PATCH', url: `/v1/orders/${id}`, payload: { notes: 'mine now' } }),
        await setStatus(asBob, id, 'cancelled'),
      ]
      for (const response of answers) {
        expect(response.statusCode).toBe(404)
        expect(response.json()).toMatchObject({
          code: 'ORDER_NOT_FOUND',
          detail: `Order ${id} does not exist.`,
        })
      }
    }
    expect(await fetchOrder(order.id)).toEqual(order)
    expect(await stockOf(product.id)).toBe(stock)
    expect((await eventsFor(order.id)).map((e) => e.action)).toEqual(['create'])
  })

  it('lists only the caller’s own orders for a user, everyone’s for viewers and admins', async () => {
    const customer = await newCustomer()
    const product = await newProduct()
    const items = [{ product_id: product.id, quantity: 1 }]
    const mine = await placeOrder({ customer_id: customer.id, items }, asAlice)
    const theirs = await placeOrder({ customer_id: customer.id, items }, asBob)
    const ids = async (as: Inject, query = '') => {
      const response = await as({ url: `/v1/orders?customer_id=${customer.id}${query}` })
      expect(response.statusCode).toBe(200)
      return (response.json().items as OrderBody[]).map((order) => order.id).sort()
    }

    expect(await ids(asAlice)).toEqual([mine.id])
    expect(await ids(asBob)).toEqual([theirs.id])
    expect(await ids(asViewer)).toEqual([mine.id, theirs.id].sort())
    expect(await ids(asAdmin)).toEqual([mine.id, theirs.id].sort())
    // A search that matches the other user's order still shows only one's own.
    expect(await ids(asAlice, `&q=${encodeURIComponent(customer.name)}`)).toEqual([mine.id])
  })

  it('lets a viewer read every order but change none', async () => {
    const { order, customer, product } = await pendingOrder(1, asAlice)
    expect((await asViewer({ url: `/v1/orders/${order.id}` })).json()).toEqual(order)

    const writes = [
      await post(asViewer, {
        customer_id: customer.id,
        items: [{ product_id: product.id, quantity: 1 }],
      }),
      await asViewer({ method: 'PATCH', url: `/v1/orders/${order.id}`, payload: { notes: 'x' } }),
      await setStatus(asViewer, order.id, 'cancelled'),
      await asViewer({ method: 'DELETE', url: `/v1/orders/${order.id}` }),
    ]
    for (const response of writes) expect(response.statusCode).toBe(403)
    expect(await fetchOrder(order.id)).toEqual(order)
    expect(await ordersOfCustomer(customer.id)).toHaveLength(1)
  })

  it('lets an admin read and change another user’s order', async () => {
    const { order } = await pendingOrder(1, asAlice)
    expect((await asAdmin({ url: `/v1/orders/${order.id}` })).statusCode).toBe(200)
    const patched = await asAdmin({
      method: 'PATCH',
      url: `/v1/orders/${order.id}`,
      payload: { notes: 'checked by support' },
    })
    expect(patched.statusCode).toBe(200)
    expect(patched.json().created_by).toBe(alice.id)
    expect((await setStatus(asAdmin, order.id, 'processing')).statusCode).toBe(200)
  })
})

describe('what orders keep from deletion', () => {
  it('refuses to delete a user who placed orders with 409 USER_HAS_ORDERS, suggesting deactivation', async () => {
    const carol = await createTestUser(t, 'user')
    await pendingOrder(1, injectAs(t, carol))

    const response = await asAdmin({ method: 'DELETE', url: `/v1/users/${carol.id}` })

    expect(response.statusCode).toBe(409)
    expect(response.json().code).toBe('USER_HAS_ORDERS')
    expect(response.json().detail).toContain('deactivate')
    const [row] = await t.database.db.select().from(users).where(eq(users.id, carol.id))
    expect(row?.isActive).toBe(true)
    const deactivate = await asAdmin({
      method: 'PATCH',
      url: `/v1/users/${carol.id}`,
      payload: { is_active: false },
    })
    expect(deactivate.statusCode).toBe(200)
  })

  it('still deletes a user without orders', async () => {
    const dave = await createTestUser(t, 'user')
    const response = await asAdmin({ method: 'DELETE', url: `/v1/users/${dave.id}` })
    expect(response.statusCode).toBe(204)
  })

  it('refuses to delete an ordered product with 409 PRODUCT_IN_USE and keeps it', async () => {
    const { product } = await pendingOrder(1)
    const response = await asAdmin({ method: 'DELETE', url: `/v1/products/${product.id}` })
    expect(response.statusCode).toBe(409)
    expect(response.json().code).toBe('PRODUCT_IN_USE')
    expect(await stockOf(product.id)).toBe(9)
  })
})
