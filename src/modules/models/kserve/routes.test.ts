import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../../test/helpers.js'
import { IRIS_LIKE_REVERSED, registerVersion, shippedCard } from '../../../../test/models.js'
import { problemHandler } from '../../../platform/problem.js'
import { validatorCompiler } from '../../../platform/validation.js'
import type { ModelCard } from '../card.js'
import {
  createTestBackend,
  IRIS_LIKE,
  linearClassifierReference,
  linearClassifierSpec,
  testModelBytes,
} from '../runtime/test-backend.js'
import type { ModelServer } from '../serving/types.js'
import { kserveRoutes } from './routes.js'

const ROOT = new URL('../../../../', import.meta.url)
const { version: packageVersion } = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8'))
const irisCard = shippedCard('iris')

const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
]

let t: TestApp
let admin: TestUser
let viewer: TestUser
let model: string

/** The iris card for the test backend's graph, whose input tensor is `x`. */
const cardFor = (name: string, version: string): ModelCard => ({
  ...irisCard,
  name,
  version,
  preprocessing: {
    ...irisCard.preprocessing,
    tensors: irisCard.preprocessing.tensors.map((spec) => ({ ...spec, name: 'x' })),
  },
})

const register = (card: ModelCard, testModel: string) =>
  registerVersion(t, admin, card, testModelBytes(testModel))

beforeAll(async () => {
  t = await buildTestApp(
    {},
    {
      inference: createTestBackend({
        // A second classifier, so a pinned version answers visibly differently from the active one.
        models: { iris: linearClassifierSpec(), swapped: linearClassifierSpec(IRIS_LIKE_REVERSED) },
      }),
      privateDatabase: true,
    },
  )
  admin = await createTestUser(t, 'admin')
  viewer = await createTestUser(t, 'viewer')
  model = `iris-${unique().toLowerCase()}`
  await register(cardFor(model, '1.0.0'), 'iris')
  // Registered, not activated: known but not loaded until a request pins it.
  await register(cardFor(model, '1.1.0'), 'swapped')
})
afterAll(() => t.close())

const infer = (body: unknown, url = `/v2/models/${model}/infer`, as: TestUser = viewer) =>
  injectAs(t, as)({ method: 'POST', url, payload: body as object })

const irisRequest = (extra: object = {}) => ({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: ROWS.flat() }],
  ...extra,
})

/** What the response must hold for ROWS, computed in double precision by the reference. */
function expectReferenceOutputs(outputs: { name: string; data: number[] }[], weights = IRIS_LIKE) {
  const expected = ROWS.map((row) => linearClassifierReference(row, weights))
  const byName = Object.fromEntries(outputs.map((output) => [output.name, output.data]))
  const probabilities = expected.flatMap((row) => row.probabilities)
  expect(byName.probabilities).toHaveLength(probabilities.length)
  for (const [index, p] of (byName.probabilities ?? []).entries()) {
    expect(p).toBeCloseTo(probabilities[index] ?? 0, 6)
  }
  expect(byName.label).toEqual(expected.map((row) => row.label))
}

describe('public routes', () => {
  it('GET /v2 answers the server metadata without credentials', async () => {
    const response = await t.app.inject({ url: '/v2' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toEqual({ name: 'orderflow', version: packageVersion, extensions: [] })
  })

  it('GET /v2/health/live answers live without credentials', async () => {
    const response = await t.app.inject({ url: '/v2/health/live' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toEqual({ live: true })
  })

  it('GET /v2/health/ready answers ready without credentials', async () => {
    const response = await t.app.inject({ url: '/v2/health/ready' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toEqual({ ready: true })
  })
})

describe('credentials', () => {
  it.each([
    ['GET', 'metadata', ''],
    ['GET', 'version metadata', '/versions/1.0.0'],
    ['GET', 'readiness', '/ready'],
    ['GET', 'version readiness', '/versions/1.0.0/ready'],
    ['POST', 'inference', '/infer'],
    ['POST', 'version inference', '/versions/1.0.0/infer'],
  ] as const)(
    'when %s %s has no credentials, then 401 with an error member',
    async (method, _what, path) => {
      const response = await t.app.inject({
        method,
        url: `/v2/models/${model}${path}`,
        ...(method === 'POST' ? { payload: irisRequest() } : {}),
      })
      expect(response.statusCode).toBe(401)
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/)
      const problem = response.json()
      expect(problem).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' })
      expect(problem.error).toBe(problem.detail)
    },
  )
})

describe('GET /v2/models/{name}[/versions/{version}]', () => {
  it("answers the active version's tensors, dynamic dims as -1, and every version", async () => {
    const response = await injectAs(t, viewer)({ url: `/v2/models/${model}` })
    expect(response.statusCode, response.body).toBe(200)
    const metadata = response.json()
    expect(metadata).toEqual({
      name: model,
      versions: expect.arrayContaining(['1.0.0', '1.1.0']),
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [
        { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
        { name: 'label', datatype: 'INT64', shape: [-1] },
      ],
    })
    expect(metadata.versions).toHaveLength(2)
  })

  it('answers a version by name', async () => {
    const response = await injectAs(t, viewer)({ url: `/v2/models/${model}/versions/1.1.0` })
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json().inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 4] }])
  })

  it('when the model is unknown, then 404 MODEL_NOT_FOUND with an error member', async () => {
    const response = await injectAs(t, viewer)({ url: '/v2/models/no-such-model' })
    expect(response.statusCode).toBe(404)
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
    const problem = response.json()
    expect(problem.code).toBe('MODEL_NOT_FOUND')
    expect(problem.error).toBe(problem.detail)
  })

  it('when the version is unknown, then 404 MODEL_VERSION_NOT_FOUND', async () => {
    const response = await injectAs(t, viewer)({ url: `/v2/models/${model}/versions/9.9.9` })
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('MODEL_VERSION_NOT_FOUND')
  })

  it('when the name or the version breaks its pattern, then 422 names the path parameter', async () => {
    const cases = [
      { url: `/v2/models/${model}/versions/latest`, path: 'params.version' },
      { url: `/v2/models/${model}/versions/1.0.0%00`, path: 'params.version' },
      { url: `/v2/models/${model}/versions/${'1'.repeat(40)}.0.0`, path: 'params.version' },
      { url: '/v2/models/Iris', path: 'params.name' },
      { url: `/v2/models/${model}/versions/latest/ready`, path: 'params.version' },
      { url: `/v1/models/${model}%20x`, path: 'params.name' },
    ]
    for (const { url, path } of cases) {
      const response = await injectAs(t, viewer)({ url })
      expect(response.statusCode, url).toBe(422)
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(response.json().errors.map((error: { path: string }) => error.path)).toContain(path)
    }
  })
})

describe('GET /v2/models/{name}[/versions/{version}]/ready', () => {
  it('when the active version is loaded, then 200 ready', async () => {
    const response = await injectAs(t, viewer)({ url: `/v2/models/${model}/ready` })
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json()).toEqual({ name: model, ready: true })
  })

  it('when a registered version is not loaded, then 400 MODEL_NOT_READY, and asking does not load it', async () => {
    const name = `iris-${unique().toLowerCase()}`
    await register(cardFor(name, '1.0.0'), 'iris')
    await register(cardFor(name, '2.0.0'), 'swapped')
    const url = `/v2/models/${name}/versions/2.0.0/ready`
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await injectAs(t, viewer)({ url })
      expect(response.statusCode).toBe(400)
      const problem = response.json()
      expect(problem).toMatchObject({ code: 'MODEL_NOT_READY', name, ready: false })
      expect(problem.error).toBe(problem.detail)
    }
    expect((await infer(irisRequest(), `/v2/models/${name}/versions/2.0.0/infer`)).statusCode).toBe(
      200,
    )
    const loaded = await injectAs(t, viewer)({ url })
    expect(loaded.statusCode).toBe(200)
    expect(loaded.json()).toEqual({ name, ready: true })
  })

  it('when the model is unknown, then 404 MODEL_NOT_FOUND', async () => {
    const response = await injectAs(t, viewer)({ url: '/v2/models/no-such-model/ready' })
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('MODEL_NOT_FOUND')
  })

  it('when the version is unknown, then 404 MODEL_VERSION_NOT_FOUND', async () => {
    const response = await injectAs(
      t,
      viewer,
    )({
      url: `/v2/models/${model}/versions/9.9.9/ready`,
    })
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('MODEL_VERSION_NOT_FOUND')
  })
})

describe('POST /v2/models/{name}[/versions/{version}]/infer', () => {
  it("answers every output as the reference computes it, echoing the request's id", async () => {
    const response = await infer(irisRequest({ id: 'req-42' }))
    expect(response.statusCode, response.body).toBe(200)
    const body = response.json()
    expect(body).toMatchObject({ model_name: model, model_version: '1.0.0', id: 'req-42' })
    expect(body.outputs.map((o: { name: string }) => o.name)).toEqual(['probabilities', 'label'])
    expect(body.outputs[0]).toMatchObject({ datatype: 'FP32', shape: [2, 3] })
    expect(body.outputs[1]).toMatchObject({ datatype: 'INT64', shape: [2] })
    expectReferenceOutputs(body.outputs)
  })

  it('takes data nested as the shape', async () => {
    const response = await infer({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: ROWS }],
    })
    expect(response.statusCode, response.body).toBe(200)
    expectReferenceOutputs(response.json().outputs)
  })

  it('answers only the requested outputs', async () => {
    const response = await infer(irisRequest({ outputs: [{ name: 'label' }] }))
    expect(response.statusCode, response.body).toBe(200)
    const outputs = response.json().outputs
    expect(outputs).toHaveLength(1)
    expect(outputs[0]).toMatchObject({ name: 'label', datatype: 'INT64', shape: [2] })
  })

  it('when a version is pinned, then that version answers', async () => {
    const response = await infer(irisRequest(), `/v2/models/${model}/versions/1.1.0/infer`)
    expect(response.statusCode, response.body).toBe(200)
    const body = response.json()
    expect(body.model_version).toBe('1.1.0')
    expect(body).not.toHaveProperty('id')
    expectReferenceOutputs(body.outputs, IRIS_LIKE_REVERSED)
  })

  it('when the request does not fit the model, then 422 listing every problem, with an error member', async () => {
    const response = await infer({
      inputs: [
        { name: 'x', datatype: 'INT64', shape: [2, 4], data: ROWS.flat() },
        { name: 'petals', datatype: 'FP32', shape: [1], data: [1] },
      ],
      outputs: [{ name: 'logits' }],
    })
    expect(response.statusCode).toBe(422)
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
    const problem = response.json()
    expect(problem).toMatchObject({ status: 422, code: 'VALIDATION_FAILED' })
    expect(problem.request_id).toEqual(expect.any(String))
    expect(problem.errors.map((e: { path: string }) => e.path)).toEqual([
      'body.inputs[0].datatype',
      'body.inputs[1].name',
      'body.outputs[0].name',
    ])
    expect(problem.error).toBe(problem.detail)
    expect(problem.error).toContain('body.inputs[0].datatype must be FP32')
  })

  it('when an element is not a number, then 422 names it by path', async () => {
    const data = ROWS.flat() as unknown[]
    data[5] = 'three'
    const response = await infer({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data }],
    })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'body.inputs[0].data[5]', message: 'must be a number, got "three"' },
    ])
  })

  it('when the body breaks the schema, then 422 with an error member, named as the codec names places', async () => {
    const response = await infer({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4] }] })
    expect(response.statusCode).toBe(422)
    const problem = response.json()
    expect(problem.code).toBe('VALIDATION_FAILED')
    expect(problem.errors).toEqual([{ path: 'body.inputs[0].data', message: 'is required' }])
    expect(problem.error).toBe(problem.detail)
  })

  it('when the model is unknown, then 404 MODEL_NOT_FOUND with an error member', async () => {
    const response = await infer(irisRequest(), '/v2/models/no-such-model/infer')
    expect(response.statusCode).toBe(404)
    const problem = response.json()
    expect(problem.code).toBe('MODEL_NOT_FOUND')
    expect(problem.error).toBe(problem.detail)
  })

  it('when the pinned version is unknown, then 404 MODEL_VERSION_NOT_FOUND', async () => {
    const response = await infer(irisRequest(), `/v2/models/${model}/versions/9.9.9/infer`)
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('MODEL_VERSION_NOT_FOUND')
  })

  it('when an admin infers, then it is answered as for any role', async () => {
    const response = await infer(irisRequest(), undefined, admin)
    expect(response.statusCode).toBe(200)
  })
})

describe('the plugin alone', () => {
  const idle: ModelServer = {
    infer: () => Promise.reject(new Error('not expected')),
    resolve: () => Promise.reject(new Error('not expected')),
    isReady: () => false,
    allActiveReady: () => false,
    states: () => [],
  }

  async function bare() {
    const app = Fastify()
    app.setValidatorCompiler(validatorCompiler)
    await app.register(problemHandler)
    await app.register(kserveRoutes, {
      prefix: '/v2',
      version: packageVersion,
      server: idle,
      ready: async () => true,
      versionsOf: async () => [],
    })
    return app
  }

  it('when versionsOf knows no version, then the model is not found', async () => {
    const app = await bare()
    const response = await app.inject({ url: '/v2/models/ghost/ready' })
    expect(response.statusCode).toBe(404)
    expect(response.json()).toMatchObject({ code: 'MODEL_NOT_FOUND', error: expect.any(String) })
    await app.close()
  })

  it('leaves problems of routes outside the plugin without an error member', async () => {
    const app = Fastify()
    await app.register(problemHandler)
    await app.register(kserveRoutes, {
      prefix: '/v2',
      version: packageVersion,
      server: idle,
      ready: async () => true,
      versionsOf: async () => [],
    })
    app.get('/elsewhere', async () => {
      throw new Error('boom')
    })
    const response = await app.inject({ url: '/elsewhere' })
    expect(response.statusCode).toBe(500)
    expect(response.json()).not.toHaveProperty('error')
    await app.close()
  })
})

describe('a full prediction queue', () => {
  let slow: TestApp
  let caller: TestUser
  const name = `iris-${unique().toLowerCase()}`
  const backend = createTestBackend({ models: { iris: linearClassifierSpec() } })

  beforeAll(async () => {
    slow = await buildTestApp(
      { PREDICT_QUEUE_MAX: '2', INFERENCE_MAX_BATCH_SIZE: '2', RATE_LIMIT_MAX: '1000' },
      { inference: backend, privateDatabase: true },
    )
    const owner = await createTestUser(slow, 'admin')
    caller = await createTestUser(slow, 'viewer')
    await registerVersion(slow, owner, cardFor(name, '1.0.0'), testModelBytes('iris'))
  })
  afterAll(() => slow?.close())

  it('when more inferences arrive than the queue holds, then the surplus gets 503 PREDICTION_QUEUE_FULL with Retry-After and an error member', async () => {
    // The model stays busy until every refusal is in, however slowly the requests arrive.
    const release = backend.hold()
    let answered = 0
    const pending = Array.from({ length: 10 }, () =>
      injectAs(
        slow,
        caller,
      )({ method: 'POST', url: `/v2/models/${name}/infer`, payload: irisRequest() }).finally(
        () => answered++,
      ),
    )
    try {
      await vi.waitFor(() => expect(answered).toBe(8), { timeout: 20_000, interval: 20 })
    } finally {
      release()
    }
    const responses = await Promise.all(pending)
    const refused = responses.filter((response) => response.statusCode === 503)
    expect(responses.filter((response) => response.statusCode === 200)).toHaveLength(2)
    expect(refused).toHaveLength(8)
    for (const response of refused) {
      expect(response.headers['retry-after']).toBe('1')
      const problem = response.json()
      expect(problem.code).toBe('PREDICTION_QUEUE_FULL')
      expect(problem.error).toBe(problem.detail)
    }
  })
})
