import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../../test/helpers.js'
import { registerVersion, shippedBytes, shippedCard } from '../../../../test/models.js'

const irisCard = shippedCard('iris')
const SETOSA = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }

let t: TestApp
let admin: TestUser
let viewer: TestUser

beforeAll(async () => {
  // The prediction cache would answer repeated inputs without an inference call.
  t = await buildTestApp({ PREDICTION_CACHE_TTL_MS: '0' }, { privateDatabase: true })
  admin = await createTestUser(t, 'admin')
  viewer = await createTestUser(t, 'viewer')
})
afterAll(() => t.close())

/** The iris graph under a name of this test's own: its figures start at zero. */
async function freshModel() {
  const name = `stats-${unique().toLowerCase()}`
  await registerVersion(t, admin, { ...irisCard, name }, shippedBytes('iris'))
  return name
}

describe('GET /v1/models/{name}/stats', () => {
  it('when a model has served predictions, then its totals count the requests, the batches and their sizes, and a viewer may read them', async () => {
    const name = await freshModel()
    const as = injectAs(t, viewer)
    for (let n = 0; n < 3; n++) {
      const single = await as({
        method: 'POST',
        url: `/v1/models/${name}/predict`,
        payload: { inputs: { ...SETOSA, sepal_length: 5 + n / 10 } },
      })
      expect(single.statusCode, single.body).toBe(200)
    }
    const batch = await as({
      method: 'POST',
      url: `/v1/models/${name}/predict/batch`,
      payload: { instances: [SETOSA, { ...SETOSA, petal_length: 1.5 }, SETOSA, SETOSA, SETOSA] },
    })
    expect(batch.statusCode, batch.body).toBe(200)

    const response = await as({ url: `/v1/models/${name}/stats` })
    expect(response.statusCode, response.body).toBe(200)
    const stats = response.json()
    expect(stats).toMatchObject({ model: name, window_seconds: 10 })
    expect(stats.windows).toHaveLength(30)
    const { totals } = stats
    expect(totals.requests).toBe(4)
    expect(totals.rate_per_second).toBeGreaterThan(0)
    expect(totals.latency_ms.p50).toBeGreaterThan(0)
    expect(totals.latency_ms.p50).toBeLessThanOrEqual(totals.latency_ms.p95)
    expect(totals.latency_ms.p95).toBeLessThanOrEqual(totals.latency_ms.p99)
    // Three single rows and one call of five: how they were grouped is the batcher's choice.
    expect(totals.batches).toBeGreaterThanOrEqual(2)
    expect(totals.batch_size.max).toBe(5)
    const summed = stats.windows.reduce(
      (sum: number, window: { requests: number }) => sum + window.requests,
      0,
    )
    expect(summed).toBe(4)
  })

  it('when a model has not served yet, then every figure is zero or null', async () => {
    const name = await freshModel()
    const response = await injectAs(t, viewer)({ url: `/v1/models/${name}/stats` })
    expect(response.statusCode).toBe(200)
    expect(response.json().totals).toEqual({
      requests: 0,
      rate_per_second: 0,
      latency_ms: null,
      batches: 0,
      batch_size: null,
    })
  })

  it('when the model does not exist, then 404 MODEL_NOT_FOUND', async () => {
    const response = await injectAs(
      t,
      viewer,
    )({ url: `/v1/models/nope-${unique().toLowerCase()}/stats` })
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('MODEL_NOT_FOUND')
  })

  it('when the name breaks the naming rule, then 422 naming the parameter', async () => {
    const response = await injectAs(t, viewer)({ url: '/v1/models/Not%20A%20Name/stats' })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors[0].path).toBe('params.name')
  })

  it('when no one is signed in, then 401', async () => {
    const name = await freshModel()
    expect((await t.app.inject({ url: `/v1/models/${name}/stats` })).statusCode).toBe(401)
  })
})
