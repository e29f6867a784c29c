import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GoldenFile } from '../../../../scripts/training/artifacts.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
} from '../../../../test/helpers.js'
import { type ShippedModel, shippedCard, shippedGolden } from '../../../../test/models.js'

const shipped = (name: ShippedModel) => ({ card: shippedCard(name), golden: shippedGolden(name) })
const iris = shipped('iris')
const carPrice = shipped('car-price')

interface Answer {
  prediction: number | string
  probabilities?: Record<string, number>
}

/** The golden file's own rule: |actual - expected| <= tolerance * max(1, |expected|). */
function expectClose(actual: unknown, expected: number, tolerance: number, what: string) {
  expect(typeof actual, what).toBe('number')
  expect(Math.abs((actual as number) - expected), what).toBeLessThanOrEqual(
    tolerance * Math.max(1, Math.abs(expected)),
  )
}

const irisLabels = iris.card.outputs.find((output) => output.name === 'label')?.labels ?? []

function expectIrisGolden(answer: Answer, index: number) {
  const { output } = iris.golden.cases[index] as GoldenFile['cases'][number]
  const expected = output.probabilities as number[]
  expect(answer.prediction, `case ${index}`).toBe(irisLabels[output.label as number])
  expect(Object.keys(answer.probabilities ?? {})).toEqual(irisLabels)
  irisLabels.forEach((label, k) => {
    expectClose(
      answer.probabilities?.[label],
      expected[k] as number,
      iris.golden.tolerance,
      `case ${index} p(${label})`,
    )
  })
}

function expectCarPriceGolden(answer: Answer, index: number) {
  const { output } = carPrice.golden.cases[index] as GoldenFile['cases'][number]
  const [price] = output.price as number[]
  expect(answer.probabilities, `case ${index}`).toBeUndefined()
  expectClose(answer.prediction, price as number, carPrice.golden.tolerance, `case ${index}`)
}

let t: TestApp
let viewer: TestUser

beforeAll(async () => {
  // The real ONNX Runtime. In services mode the shipped models may already be registered by
  // another file or an earlier run; registration then skips them.
  t = await buildTestApp(
    { MODELS_REGISTER_SHIPPED: 'true', PREDICTION_CACHE_TTL_MS: '0' },
    { privateDatabase: true },
  )
  viewer = await createTestUser(t, 'viewer')
})
afterAll(() => t?.close())

describe.each([
  ['iris', iris, expectIrisGolden],
  ['car-price', carPrice, expectCarPriceGolden],
] as const)('the shipped %s model through the API', (name, { golden }, expectGolden) => {
  // Pinned to the version the golden file was made with: in services mode another file may
  // have activated another version of a shipped model.
  const url = (path: string) => `/v1/models/${name}/${path}?version=${golden.version}`

  it('when each golden case is predicted alone, then it answers the golden output', async () => {
    const responses = await Promise.all(
      golden.cases.map((goldenCase) =>
        injectAs(
          t,
          viewer,
        )({ method: 'POST', url: url('predict'), payload: { inputs: goldenCase.input } }),
      ),
    )
    responses.forEach((response, index) => {
      expect(response.statusCode, response.body).toBe(200)
      const body = response.json()
      expect(body).toMatchObject({ model: name, version: golden.version, cached: false })
      expectGolden(body, index)
    })
  })

  it('when every golden case is sent in one batch, then each answers as it does alone', async () => {
    const response = await injectAs(
      t,
      viewer,
    )({
      method: 'POST',
      url: url('predict/batch'),
      payload: { instances: golden.cases.map((goldenCase) => goldenCase.input) },
    })
    expect(response.statusCode, response.body).toBe(200)
    const body = response.json()
    expect(body).toMatchObject({ model: name, version: golden.version, errors: [] })
    expect(body.predictions).toHaveLength(golden.cases.length)
    body.predictions.forEach((answer: Answer, index: number) => {
      expectGolden(answer, index)
    })
  })
})

describe('POST /v1/predict', () => {
  it('when the first iris golden row is sent as features, then class and label are the golden ones', async () => {
    const [first] = iris.golden.cases
    const input = first?.input ?? {}
    const features = iris.card.inputs.map((feature) => input[feature.name])
    const response = await injectAs(
      t,
      viewer,
    )({ method: 'POST', url: '/v1/predict', payload: { features } })
    expect(response.statusCode, response.body).toBe(200)
    const body = response.json()
    expect(body).toMatchObject({ model: 'iris', version: iris.golden.version, cached: false })
    expect(body.class).toBe(first?.output.label)
    expect(body.label).toBe(irisLabels[body.class])
    expectIrisGolden({ prediction: body.label, probabilities: body.probabilities }, 0)
  })
})
