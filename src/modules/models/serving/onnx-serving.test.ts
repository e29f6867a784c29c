import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
} from '../../../../test/helpers.js'

/**
 * Validation, micro-batching and the cache on ONNX Runtime itself, with the shipped models:
 * the same paths predict.test.ts covers with the test double, run once on the real engine.
 */

const IRIS_ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [4.9, 3.0, 1.4, 0.2],
  [6.4, 3.2, 4.5, 1.5],
  [5.7, 2.8, 4.1, 1.3],
  [6.3, 3.3, 6.0, 2.5],
  [7.7, 3.8, 6.7, 2.2],
  [5.0, 3.6, 1.4, 0.2],
  [6.9, 3.1, 5.4, 2.1],
]
const inputsOf = ([sepal_length, sepal_width, petal_length, petal_width]: number[]) => ({
  sepal_length,
  sepal_width,
  petal_length,
  petal_width,
})

/** Sum and count of a histogram's series for `labels`, from the Prometheus text. */
function histogram(metrics: string, name: string, labels: string) {
  const read = (suffix: string) =>
    Number(new RegExp(`^${name}_${suffix}\\{${labels}\\} (\\S+)$`, 'm').exec(metrics)?.[1] ?? 0)
  return { sum: read('sum'), count: read('count') }
}

describe('serving on ONNX Runtime', () => {
  let t: TestApp
  let user: TestUser
  let predict: (body: object, path?: string) => ReturnType<ReturnType<typeof injectAs>>

  beforeAll(async () => {
    t = await buildTestApp(
      // A wide window so that parallel requests surely meet in one batch.
      { MODELS_REGISTER_SHIPPED: 'true', INFERENCE_MAX_WAIT_MS: '25' },
      { privateDatabase: true },
    )
    user = await createTestUser(t, 'user')
    predict = (body, path = '/v1/models/iris/predict') =>
      injectAs(t, user)({ method: 'POST', url: path, payload: body })
  })
  afterAll(() => t?.close())

  it('when parallel predictions arrive, then ONNX Runtime runs them in batches of several rows', async () => {
    const before = histogram(
      (await t.app.inject({ url: '/metrics' })).body,
      'model_batch_size',
      'model="iris"',
    )
    const answers = await Promise.all(IRIS_ROWS.map((row) => predict({ inputs: inputsOf(row) })))
    for (const answer of answers) expect(answer.statusCode, answer.body).toBe(200)
    const after = histogram(
      (await t.app.inject({ url: '/metrics' })).body,
      'model_batch_size',
      'model="iris"',
    )
    const rows = after.sum - before.sum
    const calls = after.count - before.count
    expect(rows).toBe(IRIS_ROWS.length)
    expect(calls).toBeLessThan(IRIS_ROWS.length)
    // Each answer is its own row's, not a neighbour's from the same batch.
    const alone = await Promise.all(
      IRIS_ROWS.map(async (row) => (await predict({ inputs: inputsOf(row) })).json().prediction),
    )
    expect(answers.map((answer) => answer.json().prediction)).toEqual(alone)
  })

  it('when the same input comes again, then the cache answers with the same prediction', async () => {
    const body = { inputs: inputsOf([6.1, 2.9, 4.7, 1.4]) }
    const first = (await predict(body)).json()
    const second = (await predict(body)).json()
    expect(first.cached).toBe(false)
    expect(second).toMatchObject({ cached: true, prediction: first.prediction })
    expect(second.probabilities).toEqual(first.probabilities)
  })

  it('when car-price inputs break the card, then 422 lists every problem and nothing runs', async () => {
    const before = histogram(
      (await t.app.inject({ url: '/metrics' })).body,
      'model_batch_size',
      'model="car-price"',
    )
    const response = await predict(
      { inputs: { year: 1990, mileage_km: '80000', brand: 'trabant', fuel_type: 'petrol' } },
      '/v1/models/car-price/predict',
    )
    expect(response.statusCode).toBe(422)
    const paths = response.json().errors.map((error: { path: string }) => error.path)
    expect(paths).toEqual(
      expect.arrayContaining([
        'body.inputs.year',
        'body.inputs.mileage_km',
        'body.inputs.brand',
        'body.inputs.transmission',
      ]),
    )
    const after = histogram(
      (await t.app.inject({ url: '/metrics' })).body,
      'model_batch_size',
      'model="car-price"',
    )
    expect(after.count).toBe(before.count)
  })

  it('when a car-price input is missing, then the graph imputes it and the price is finite', async () => {
    const response = await predict(
      {
        inputs: {
          year: 2018,
          mileage_km: 60000,
          brand: 'toyota',
          fuel_type: 'petrol',
          transmission: 'manual',
          power_kw: null,
        },
      },
      '/v1/models/car-price/predict',
    )
    expect(response.statusCode, response.body).toBe(200)
    const { prediction } = response.json()
    expect(Number.isFinite(prediction)).toBe(true)
    expect(prediction).toBeGreaterThan(500)
  })
})
