import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { insertProduct } from '../../test/catalog.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../test/helpers.js'
import { customers } from '../db/schema/index.js'
import { etagMatches } from './conditional-get.js'

let t: TestApp
let admin: TestUser
let alice: TestUser
let bob: TestUser

beforeAll(async () => {
  t = await buildTestApp()
  ;[admin, alice, bob] = await Promise.all([
    createTestUser(t, 'admin'),
    createTestUser(t, 'user'),
    createTestUser(t, 'user'),
  ])
})
afterAll(() => t?.close())

const STRONG = /^"[A-Za-z0-9_-]{27}"$/

async function placeOrder(user: TestUser) {
  const product = await insertProduct(t)
  const [customer] = await t.database.db
    .insert(customers)
    .values({ name: `Customer ${unique()}`, email: `c-${unique().toLowerCase()}@example.com` })
    .returning()
  const response = await injectAs(
    t,
    user,
  )({
    method: 'POST',
    url: '/v1/orders',
    payload: { customer_id: customer?.id, items: [{ product_id: product.id, quantity: 1 }] },
  })
  return response.json() as { id: string }
}

describe('ETag and If-None-Match', () => {
  it('when a product is read, then it carries a strong ETag, and that ETag back answers 304 without a body', async () => {
    const product = await insertProduct(t)
    const url = `/v1/products/${product.id}`
    const first = await injectAs(t, alice)({ url })
    expect(first.statusCode).toBe(200)
    const etag = first.headers.etag as string
    expect(etag).toMatch(STRONG)

    for (const header of [etag, `W/${etag}`, `"elsewhere", ${etag}`, '*']) {
      const again = await injectAs(t, alice)({ url, headers: { 'if-none-match': header } })
      expect(again.statusCode).toBe(304)
      expect(again.body).toBe('')
      expect(again.headers.etag).toBe(etag)
    }
    const other = await injectAs(t, alice)({ url, headers: { 'if-none-match': '"elsewhere"' } })
    expect(other.statusCode).toBe(200)
    expect(other.json().id).toBe(product.id)
  })

  it('when a product changes, then its old ETag answers 200 with the new one, which the change’s own answer carried', async () => {
    const product = await insertProduct(t)
    const url = `/v1/products/${product.id}`
    const before = (await injectAs(t, admin)({ url })).headers.etag as string
    const patched = await injectAs(
      t,
      admin,
    )({
      method: 'PATCH',
      url,
      payload: { stock: 3 },
    })
    expect(patched.headers.etag).toMatch(STRONG)
    expect(patched.headers.etag).not.toBe(before)
    const after = await injectAs(t, admin)({ url, headers: { 'if-none-match': before } })
    expect(after.statusCode).toBe(200)
    expect(after.json().stock).toBe(3)
    expect(after.headers.etag).toBe(patched.headers.etag)
  })

  it('when an order is read again by its owner with its ETag, then 304; another user with the same ETag gets 404', async () => {
    const order = await placeOrder(alice)
    const url = `/v1/orders/${order.id}`
    const etag = (await injectAs(t, alice)({ url })).headers.etag as string
    expect(etag).toMatch(STRONG)
    const owner = await injectAs(t, alice)({ url, headers: { 'if-none-match': etag } })
    expect(owner.statusCode).toBe(304)
    const foreign = await injectAs(t, bob)({ url, headers: { 'if-none-match': etag } })
    expect(foreign.statusCode).toBe(404)
    expect(foreign.headers.etag).toBeUndefined()
  })

  it('when an order’s notes change, then the answer’s ETag is the one the next read carries', async () => {
    const order = await placeOrder(alice)
    const url = `/v1/orders/${order.id}`
    const patched = await injectAs(t, alice)({ method: 'PATCH', url, payload: { notes: 'Gift' } })
    const read = await injectAs(t, alice)({ url })
    expect(patched.headers.etag).toMatch(STRONG)
    expect(read.headers.etag).toBe(patched.headers.etag)
  })

  it('when a body leaves compressed, then its ETag is the weak form of the same tag, and either form answers 304', async () => {
    const product = await insertProduct(t, { description: 'A lamp. '.repeat(200) })
    const url = `/v1/products/${product.id}`
    const plain = await injectAs(t, alice)({ url })
    const zipped = await injectAs(t, alice)({ url, headers: { 'accept-encoding': 'gzip' } })
    expect(zipped.headers['content-encoding']).toBe('gzip')
    expect(zipped.headers.etag).toBe(`W/${plain.headers.etag}`)
    expect(JSON.parse(gunzipSync(zipped.rawPayload).toString()).id).toBe(product.id)
    for (const header of [zipped.headers.etag, plain.headers.etag] as string[]) {
      const again = await injectAs(
        t,
        alice,
      )({
        url,
        headers: { 'accept-encoding': 'gzip', 'if-none-match': header },
      })
      expect(again.statusCode).toBe(304)
      expect(again.rawPayload.length).toBe(0)
    }
  })

  it('when the read cache is off, then reads carry the same ETag and still answer 304', async () => {
    const product = await insertProduct(t)
    const url = `/v1/products/${product.id}`
    const cached = (await injectAs(t, alice)({ url })).headers.etag as string
    const uncached = await buildTestApp({ READ_CACHE_TTL_MS: '0' }, { database: t.database })
    try {
      const response = await injectAs(uncached, alice)({ url })
      expect(response.headers.etag).toBe(cached)
      const again = await injectAs(uncached, alice)({ url, headers: { 'if-none-match': cached } })
      expect(again.statusCode).toBe(304)
    } finally {
      await uncached.close()
    }
  })

  it('matches If-None-Match weakly, by list entry, and never on a prefix or an empty header', () => {
    expect(etagMatches('"abc"', '"abc"')).toBe(true)
    expect(etagMatches('W/"abc"', '"abc"')).toBe(true)
    expect(etagMatches(' "x" ,  W/"abc" ', '"abc"')).toBe(true)
    expect(etagMatches('"ab"', '"abc"')).toBe(false)
    expect(etagMatches('', '"abc"')).toBe(false)
    expect(etagMatches(undefined, '"abc"')).toBe(false)
  })
})

describe('ETag in the API document', () => {
  it('documents the ETag, If-None-Match and 304 on single reads, and the ETag on changes', async () => {
    const document = (await t.app.inject({ url: '/openapi.json' })).json()
    for (const path of ['/v1/orders/{id}', '/v1/products/{id}']) {
      const get = document.paths[path].get
      expect(get.responses['304'].description).toMatch(/Not Modified/)
      expect(get.responses['200'].headers.etag.schema.type).toBe('string')
      const header = get.parameters.find(
        (parameter: { in: string; name: string }) =>
          parameter.in === 'header' && parameter.name === 'if-none-match',
      )
      expect(header?.required).toBeFalsy()
      expect(document.paths[path].patch.responses['200'].headers.etag).toBeDefined()
      expect(document.paths[path].patch.responses['304']).toBeUndefined()
    }
  })
})
