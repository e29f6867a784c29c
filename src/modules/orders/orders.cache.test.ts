import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { insertProduct } from '../../../test/catalog.js'
import { type PrivateRedis, startPrivateRedis } from '../../../test/faults/servers.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import { customers } from '../../db/schema/index.js'
import { connectRedis, type GuardedRedis } from '../../platform/redis.js'

// Two instances over one database and a Redis of this file's own (in both modes), so that
// no other file's invalidations reach these caches. A TTL far above every wait below: what
// these tests see comes from invalidation, never from expiry.
let redis: PrivateRedis
const clients: GuardedRedis[] = []
let a: TestApp
let b: TestApp
let admin: TestUser
let alice: TestUser
let bob: TestUser
let viewer: TestUser

async function client() {
  const connected = connectRedis(
    { url: redis.url, commandTimeoutMs: 500, breakerResetMs: 1000, connectTimeoutMs: 1000 },
    pino({ level: 'silent' }),
  )
  clients.push(connected)
  while (connected.status !== 'ready') await sleep(5)
  return connected
}

beforeAll(async () => {
  redis = await startPrivateRedis()
  const env = { READ_CACHE_TTL_MS: '600000' }
  a = await buildTestApp(env, { redis: await client() })
  b = await buildTestApp(env, { redis: await client(), database: a.database })
  ;[admin, alice, bob, viewer] = await Promise.all([
    createTestUser(a, 'admin'),
    createTestUser(a, 'user'),
    createTestUser(a, 'user'),
    createTestUser(a, 'viewer'),
  ])
  // The broadcast subscriptions are made in the background.
  await sleep(100)
})
afterAll(async () => {
  await b?.close()
  await a?.close()
  for (const connected of clients) connected.disconnect()
  await redis?.close()
})

async function newCustomer() {
  const [row] = await a.database.db
    .insert(customers)
    .values({ name: `Customer ${unique()}`, email: `c-${unique().toLowerCase()}@example.com` })
    .returning()
  if (!row) throw new Error('no customer')
  return row
}

async function placeOrder(user: TestUser, productId: string, quantity = 2) {
  const customer = await newCustomer()
  const response = await injectAs(
    a,
    user,
  )({
    method: 'POST',
    url: '/v1/orders',
    payload: { customer_id: customer.id, items: [{ product_id: productId, quantity }] },
  })
  expect(response.statusCode).toBe(201)
  return response.json() as { id: string; customer_id: string }
}

/** What `/metrics` counts of `resource` reads answered with `result`. */
async function reads(t: TestApp, resource: string, result: string) {
  const body = (await t.app.inject({ url: '/metrics' })).body
  const line = body
    .split('\n')
    .find((text) =>
      text.startsWith(`read_cache_requests_total{resource="${resource}",result="${result}"}`),
    )
  return line ? Number(line.split(' ').at(-1)) : 0
}

const getOrder = (t: TestApp, user: TestUser, id: string) =>
  injectAs(t, user)({ url: `/v1/orders/${id}` })
const stockShown = async (t: TestApp, id: string) =>
  (await injectAs(t, viewer)({ url: `/v1/products/${id}` })).json().stock as number

describe('read cache: the writer never reads its write stale', () => {
  it('when a cached order’s notes change, then the writer’s next read shows them', async () => {
    const product = await insertProduct(a)
    const order = await placeOrder(alice, product.id)
    await getOrder(a, alice, order.id)
    const hits = await reads(a, 'order', 'hit')
    expect((await getOrder(a, alice, order.id)).json().notes).toBeNull()
    expect(await reads(a, 'order', 'hit')).toBe(hits + 1)

    const patched = await injectAs(
      a,
      alice,
    )({
      method: 'PATCH',
      url: `/v1/orders/${order.id.toUpperCase()}`,
      payload: { notes: 'Leave at the door.' },
    })
    expect(patched.statusCode).toBe(200)
    expect((await getOrder(a, alice, order.id)).json().notes).toBe('Leave at the door.')
  })

  it('when an order is placed, cancelled or deleted, then the cached product shows its stock at once', async () => {
    const product = await insertProduct(a, { stock: 10 })
    expect(await stockShown(a, product.id)).toBe(10)
    const order = await placeOrder(alice, product.id, 3)
    expect(await stockShown(a, product.id)).toBe(7)

    const cancelled = await injectAs(
      a,
      alice,
    )({
      method: 'POST',
      url: `/v1/orders/${order.id}/status`,
      payload: { status: 'cancelled' },
    })
    expect(cancelled.statusCode).toBe(200)
    expect(await stockShown(a, product.id)).toBe(10)
    expect((await getOrder(a, alice, order.id)).json().status).toBe('cancelled')

    const pending = await placeOrder(alice, product.id, 4)
    expect(await stockShown(a, product.id)).toBe(6)
    await getOrder(a, alice, pending.id)
    const deleted = await injectAs(a, admin)({ method: 'DELETE', url: `/v1/orders/${pending.id}` })
    expect(deleted.statusCode).toBe(204)
    expect(await stockShown(a, product.id)).toBe(10)
    expect((await getOrder(a, alice, pending.id)).statusCode).toBe(404)
  })

  it('when an admin changes or deletes a cached product, then the next read shows it', async () => {
    const product = await insertProduct(a)
    expect(await stockShown(a, product.id)).toBe(50)
    const patched = await injectAs(
      a,
      admin,
    )({
      method: 'PATCH',
      url: `/v1/products/${product.id}`,
      payload: { stock: 5, name: 'Floor lamp' },
    })
    expect(patched.statusCode).toBe(200)
    const read = (await injectAs(a, admin)({ url: `/v1/products/${product.id}` })).json()
    expect(read).toMatchObject({ stock: 5, name: 'Floor lamp' })

    await injectAs(a, admin)({ method: 'DELETE', url: `/v1/products/${product.id}` })
    expect((await injectAs(a, admin)({ url: `/v1/products/${product.id}` })).statusCode).toBe(404)
  })

  it('when a customer is renamed, then cached orders show the new name', async () => {
    const product = await insertProduct(a)
    const order = await placeOrder(alice, product.id)
    await getOrder(a, alice, order.id)
    const renamed = await injectAs(
      a,
      admin,
    )({
      method: 'PATCH',
      url: `/v1/customers/${order.customer_id}`,
      payload: { name: 'Renamed Customer' },
    })
    expect(renamed.statusCode).toBe(200)
    expect((await getOrder(a, alice, order.id)).json().customer_name).toBe('Renamed Customer')
  })
})

describe('read cache: access is checked on every hit', () => {
  it('when an order is cached, then another user still gets 404 and a viewer still reads it', async () => {
    const product = await insertProduct(a)
    const order = await placeOrder(alice, product.id)
    expect((await getOrder(a, alice, order.id)).statusCode).toBe(200)
    const hits = await reads(a, 'order', 'hit')
    const foreign = await getOrder(a, bob, order.id)
    expect(foreign.statusCode).toBe(404)
    expect(foreign.json().code).toBe('ORDER_NOT_FOUND')
    expect(foreign.headers.etag).toBeUndefined()
    expect((await getOrder(a, viewer, order.id)).statusCode).toBe(200)
    // Both answers came from the cache: the rule ran on the cached order.
    expect(await reads(a, 'order', 'hit')).toBe(hits + 2)
  })

  it('when a foreign user reads an order first, then its owner still reads it', async () => {
    const product = await insertProduct(a)
    const order = await placeOrder(alice, product.id)
    expect((await getOrder(a, bob, order.id)).statusCode).toBe(404)
    expect((await getOrder(a, alice, order.id)).json().id).toBe(order.id)
  })
})

describe('read cache: two instances', () => {
  it('when one instance has read an order, then the other finds it in Redis', async () => {
    const product = await insertProduct(a)
    const order = await placeOrder(alice, product.id)
    const first = await getOrder(a, alice, order.id)
    const hits = await reads(b, 'order', 'hit')
    await vi.waitFor(async () => {
      const second = await getOrder(b, alice, order.id)
      expect(second.body).toBe(first.body)
      expect(await reads(b, 'order', 'hit')).toBeGreaterThan(hits)
    })
  })

  it('when an order changes on one instance, then the other no longer serves the old one', async () => {
    const product = await insertProduct(a, { stock: 10 })
    const order = await placeOrder(alice, product.id)
    expect((await getOrder(b, alice, order.id)).json().status).toBe('pending')
    expect(await stockShown(b, product.id)).toBe(8)

    await injectAs(
      a,
      alice,
    )({
      method: 'POST',
      url: `/v1/orders/${order.id}/status`,
      payload: { status: 'cancelled' },
    })
    // The broadcast reached Redis before the write answered; B drops its copy on reading it.
    await vi.waitFor(
      async () => {
        expect((await getOrder(b, alice, order.id)).json().status).toBe('cancelled')
        expect(await stockShown(b, product.id)).toBe(10)
      },
      { timeout: 2000 },
    )
  })
})
