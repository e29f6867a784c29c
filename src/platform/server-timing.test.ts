import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { insertProduct } from '../../test/catalog.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
} from '../../test/helpers.js'

let t: TestApp
let user: TestUser

beforeAll(async () => {
  // The shipped iris model answers predictions; registering it is state of its database.
  // A long auth cache, so that a second read is answered from memory alone.
  t = await buildTestApp(
    { SERVER_TIMING: 'true', MODELS_REGISTER_SHIPPED: 'true', AUTH_CACHE_TTL_MS: '60000' },
    { privateDatabase: true },
  )
  user = await createTestUser(t, 'user')
})
afterAll(() => t?.close())

/** The header's metrics by name: `{ db: { dur: 1.2 }, cache: { desc: 'hit' } }`. */
function metricsOf(header: unknown): Record<string, Record<string, string>> {
  expect(typeof header).toBe('string')
  return Object.fromEntries(
    String(header)
      .split(', ')
      .map((metric) => {
        const [name = '', ...params] = metric.split(';')
        return [name, Object.fromEntries(params.map((param) => param.split('=')))]
      }),
  )
}

describe('Server-Timing with SERVER_TIMING=true', () => {
  it('when a product is read twice, then the first names its database time and a miss, the second a hit and no database', async () => {
    const product = await insertProduct(t)
    const url = `/v1/products/${product.id}`
    await injectAs(t, user)({ url: '/v1/products?page_size=1' }) // the caller's auth state, cached
    const first = metricsOf((await injectAs(t, user)({ url })).headers['server-timing'])
    expect(Number(first.db?.dur)).toBeGreaterThan(0)
    expect(first.cache?.desc).toBe('miss')
    expect(Number(first.total?.dur)).toBeGreaterThanOrEqual(Number(first.db?.dur))

    const second = metricsOf((await injectAs(t, user)({ url })).headers['server-timing'])
    expect(second.cache?.desc).toBe('hit')
    expect(second.db).toBeUndefined()
    expect(second.total?.dur).toMatch(/^\d+\.\d{2}$/)
  })

  it('when a page is listed, then its database time is named and no cache is', async () => {
    const timing = metricsOf(
      (await injectAs(t, user)({ url: '/v1/products?page_size=5' })).headers['server-timing'],
    )
    expect(Number(timing.db?.dur)).toBeGreaterThan(0)
    expect(timing.cache).toBeUndefined()
  })

  it('when a prediction runs the model, then its inference time is named; its cached repeat names none', async () => {
    const payload = { features: [6.3, 2.9, 5.6, 1.8] }
    const predict = () => injectAs(t, user)({ method: 'POST', url: '/v1/predict', payload })
    const first = await predict()
    expect(first.statusCode, first.body).toBe(200)
    expect(Number(metricsOf(first.headers['server-timing']).inference?.dur)).toBeGreaterThan(0)
    const repeat = await predict()
    expect(repeat.json().cached).toBe(true)
    expect(metricsOf(repeat.headers['server-timing']).inference).toBeUndefined()
  })
})

describe('Server-Timing off (the default)', () => {
  /** Whether the database's driver object had its query methods replaced. */
  const timed = (app: TestApp) => {
    const client = (app.database.db as unknown as { $client: object }).$client
    return Object.hasOwn(client, 'connect') || Object.hasOwn(client, 'query')
  }

  it('when SERVER_TIMING is off, then no query method is wrapped and no response names a time', async () => {
    expect(timed(t)).toBe(true)
    const plain = await buildTestApp()
    try {
      expect(timed(plain)).toBe(false)
      const response = await plain.app.inject({ url: '/health' })
      expect(response.headers['server-timing']).toBeUndefined()
    } finally {
      await plain.close()
    }
  })
})
