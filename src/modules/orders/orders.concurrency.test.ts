import { eq, inArray } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { insertProduct, stockOf as stockIn } from '../../../test/catalog.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  unique,
} from '../../../test/helpers.js'
import { auditEvents, customers, orderItems } from '../../db/schema/index.js'

// Requests are fired together with Promise.all. In services mode they run on separate
// PostgreSQL connections at once; embedded PGlite runs one transaction at a time, so
// there the same tests check that the outcome does not depend on the interleaving.

let t: TestApp
let asUser: ReturnType<typeof injectAs>
let customerId: string

beforeAll(async () => {
  t = await buildTestApp()
  asUser = injectAs(t, await createTestUser(t, 'user'))
  const [customer] = await t.database.db
    .insert(customers)
    .values({ name: `Racer ${unique()}`, email: `racer-${unique().toLowerCase()}@example.com` })
    .returning()
  if (!customer) throw new Error('no customer')
  customerId = customer.id
})
afterAll(() => t.close())

const newProduct = (stock: number) =>
  insertProduct(t, { sku: `RACE-${unique()}`, name: 'Last units', price: '9.99', stock })
const stockOf = (productId: string) => stockIn(t, productId)

function order(items: { product_id: string; quantity: number }[]) {
  return asUser({ method: 'POST', url: '/v1/orders', payload: { customer_id: customerId, items } })
}

function setStatus(id: string, status: string) {
  return asUser({ method: 'POST', url: `/v1/orders/${id}/status`, payload: { status } })
}

const statuses = (responses: { statusCode: number }[]) =>
  responses.map((r) => r.statusCode).sort((a, b) => a - b)

describe('concurrent orders', () => {
  it('sells exactly the last 10 units to 50 simultaneous orders, never below 0', async () => {
    const product = await newProduct(10)

    const responses = await Promise.all(
      Array.from({ length: 50 }, () => order([{ product_id: product.id, quantity: 1 }])),
    )

    expect(statuses(responses)).toEqual([...Array(10).fill(201), ...Array(40).fill(409)])
    for (const refused of responses.filter((r) => r.statusCode === 409)) {
      expect(refused.json().code).toBe('OUT_OF_STOCK')
    }
    expect(await stockOf(product.id)).toBe(0)
    const sold = await t.database.db
      .select({ quantity: orderItems.quantity })
      .from(orderItems)
      .where(eq(orderItems.productId, product.id))
    expect(sold).toHaveLength(10)
  })

  it('never splits a multi-unit line: 30 orders of 2 for 15 units sell 7 and leave 1', async () => {
    const product = await newProduct(15)

    const responses = await Promise.all(
      Array.from({ length: 30 }, () => order([{ product_id: product.id, quantity: 2 }])),
    )

    expect(responses.filter((r) => r.statusCode === 201)).toHaveLength(7)
    expect(await stockOf(product.id)).toBe(1)
  })

  it('does not deadlock when orders list the same products in opposite orders', async () => {
    const [a, b, c] = [await newProduct(100), await newProduct(100), await newProduct(100)]
    const lines = [
      [a, b, c],
      [c, b, a],
      [b, a, c],
      [c, a, b],
    ]

    const responses = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        order((lines[i % lines.length] ?? []).map((p) => ({ product_id: p.id, quantity: 1 }))),
      ),
    )

    expect(statuses(responses)).toEqual(Array(24).fill(201))
    expect([await stockOf(a.id), await stockOf(b.id), await stockOf(c.id)]).toEqual([76, 76, 76])
  })
})

describe('concurrent status transitions', () => {
  it('lets exactly one of 10 simultaneous cancels win and returns the stock once', async () => {
    const product = await newProduct(10)
    const placed = await order([{ product_id: product.id, quantity: 4 }])
    expect(placed.statusCode).toBe(201)
    const { id } = placed.json()
    expect(await stockOf(product.id)).toBe(6)

    const responses = await Promise.all(
      Array.from({ length: 10 }, () => setStatus(id, 'cancelled')),
    )

    expect(statuses(responses)).toEqual([200, ...Array(9).fill(409)])
    for (const lost of responses.filter((r) => r.statusCode === 409)) {
      expect(lost.json()).toMatchObject({ current_status: 'cancelled', allowed_next: [] })
    }
    expect(await stockOf(product.id)).toBe(10)
    const changes = await t.database.db
      .select()
      .from(auditEvents)
      .where(inArray(auditEvents.resourceId, [id]))
    expect(changes.filter((e) => e.action === 'status_change')).toHaveLength(1)
  })

  it('lets exactly one of racing ship and cancel requests win on a processing order', async () => {
    const product = await newProduct(10)
    const placed = await order([{ product_id: product.id, quantity: 3 }])
    const { id } = placed.json()
    expect((await setStatus(id, 'processing')).statusCode).toBe(200)

    const targets = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? 'shipped' : 'cancelled'))
    const responses = await Promise.all(targets.map((status) => setStatus(id, status)))

    expect(statuses(responses)).toEqual([200, ...Array(9).fill(409)])
    const winner = responses.find((r) => r.statusCode === 200)?.json().status
    const final = (await asUser({ url: `/v1/orders/${id}` })).json()
    expect(final.status).toBe(winner)
    // Stock comes back only if the cancel won.
    expect(await stockOf(product.id)).toBe(winner === 'cancelled' ? 10 : 7)
  })

  it('keeps stock exact when orders and cancels of the same product interleave', async () => {
    const product = await newProduct(20)
    const first = await Promise.all(
      Array.from({ length: 5 }, () => order([{ product_id: product.id, quantity: 2 }])),
    )
    const ids = first.map((r) => r.json().id as string)
    expect(await stockOf(product.id)).toBe(10)

    const responses = await Promise.all([
      ...ids.map((id) => setStatus(id, 'cancelled')),
      ...Array.from({ length: 5 }, () => order([{ product_id: product.id, quantity: 2 }])),
    ])

    expect(responses.every((r) => r.statusCode === 200 || r.statusCode === 201)).toBe(true)
    expect(await stockOf(product.id)).toBe(10)
  })
})

describe('idempotent order creation', () => {
  function orderWithKey(key: string, productId: string, quantity = 1) {
    return asUser({
      method: 'POST',
      url: '/v1/orders',
      headers: { 'idempotency-key': key },
      payload: { customer_id: customerId, items: [{ product_id: productId, quantity }] },
    })
  }

  const ordersOf = async (productId: string) =>
    t.database.db
      .select({ orderId: orderItems.orderId })
      .from(orderItems)
      .where(eq(orderItems.productId, productId))

  it('places exactly one order, with one audit event, for 20 parallel requests with one key', async () => {
    const product = await newProduct(50)
    const key = `order-${unique()}`

    const responses = await Promise.all(
      Array.from({ length: 20 }, () => orderWithKey(key, product.id, 2)),
    )

    const created = responses.filter((r) => r.statusCode === 201)
    // One execution; the others either replay it or were told it is still running.
    expect(created.filter((r) => r.headers['idempotent-replayed'] !== 'true')).toHaveLength(1)
    for (const response of responses) expect([201, 409]).toContain(response.statusCode)
    const placed = await ordersOf(product.id)
    expect(placed).toHaveLength(1)
    expect(await stockOf(product.id)).toBe(48)
    const events = await t.database.db
      .select()
      .from(auditEvents)
      .where(inArray(auditEvents.resourceId, [placed[0]?.orderId as string]))
    expect(events.map((event) => event.action)).toEqual(['create'])
  })

  it('replays the stored answer byte for byte, and refuses the key with another body', async () => {
    const product = await newProduct(5)
    const key = `order-${unique()}`
    const first = await orderWithKey(key, product.id)
    expect(first.statusCode).toBe(201)

    const replay = await orderWithKey(key, product.id)
    expect(replay.statusCode).toBe(201)
    expect(replay.headers['idempotent-replayed']).toBe('true')
    expect(replay.rawPayload.equals(first.rawPayload)).toBe(true)
    expect(replay.headers.location).toBe(first.headers.location)

    const other = await orderWithKey(key, product.id, 2)
    expect(other.statusCode).toBe(422)
    expect(other.json().code).toBe('IDEMPOTENCY_KEY_REUSED')
    expect(await ordersOf(product.id)).toHaveLength(1)
    expect(await stockOf(product.id)).toBe(4)
  })
})
