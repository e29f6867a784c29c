import SerializerSelector from '@fastify/fast-json-stringify-compiler'
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
import type { ModelCard } from '../card.js'
import {
  createTestBackend,
  IRIS_LIKE,
  type LinearClassifier,
  linearClassifierReference,
  linearClassifierSpec,
  type TestBackend,
  type TestModelSpec,
  testModelBytes,
} from '../runtime/test-backend.js'

const irisCard = shippedCard('iris')
const LABELS = ['setosa', 'versicolor', 'virginica']
/** The card's inputs, in the column order of the graph's `x` tensor. */
const COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_count'] as const

/**
 * The graphs the test backend loads, by the name inside their bytes. Prefixed, so models that
 * other test files keep in the shared services-mode database never load in this file's apps.
 */
const LINEAR = 'predict-linear'
const SPECS = {
  [LINEAR]: linearClassifierSpec(IRIS_LIKE),
  'predict-reversed': linearClassifierSpec(IRIS_LIKE_REVERSED),
}
const WEIGHTS_OF: Record<keyof typeof SPECS, LinearClassifier> = {
  [LINEAR]: IRIS_LIKE,
  'predict-reversed': IRIS_LIKE_REVERSED,
}
type Spec = keyof typeof SPECS

/**
 * A card for `linearClassifierSpec`'s graph (`x` float32 [batch, 4] -> `probabilities`,
 * `label`): the iris measurements, with an integer count in place of petal width so the
 * integer rule is covered too.
 */
function cardFor(name: string, version = '1.0.0'): ModelCard {
  return {
    ...irisCard,
    name,
    version,
    inputs: [
      ...irisCard.inputs.slice(0, 3),
      {
        name: 'petal_count',
        type: 'integer',
        description: 'petals on the flower',
        minimum: 0,
        maximum: 20,
        required: true,
      },
    ],
    preprocessing: {
      tensors: [
        { name: 'x', dtype: 'float32', shape: ['N', 4], columns: [...COLUMNS], missing: 'NaN' },
      ],
      steps: [],
    },
  }
}

type Inputs = Record<(typeof COLUMNS)[number], number>

/** Valid inputs; `count` (0-20) tells requests apart and moves the answer across classes. */
const sample = (count = 2): Inputs => ({
  sepal_length: 5.1,
  sepal_width: 3.5,
  petal_length: 1.4,
  petal_count: count,
})

/** What the graph answers for `inputs`: it sees float32 features, so they are rounded first. */
function expected(inputs: Inputs, spec: Spec = LINEAR) {
  const x = COLUMNS.map((column) => Math.fround(inputs[column]))
  const { probabilities, label } = linearClassifierReference(x, WEIGHTS_OF[spec])
  return {
    classIndex: label,
    prediction: LABELS[label],
    probabilities: Object.fromEntries(LABELS.map((name, k) => [name, probabilities[k]])),
  }
}

/** Asserts that `answer` holds the label and probabilities `spec` computes for `inputs`. */
function expectComputed(
  answer: { prediction: unknown; probabilities: Record<string, number> },
  inputs: Inputs,
  spec: Spec = LINEAR,
) {
  const want = expected(inputs, spec)
  expect(answer.prediction).toBe(want.prediction)
  expect(Object.keys(answer.probabilities)).toEqual(LABELS)
  for (const label of LABELS) {
    expect(answer.probabilities[label]).toBeCloseTo(want.probabilities[label] as number, 6)
  }
}

const modelName = (prefix = 'predict') => `${prefix}-${unique().toLowerCase()}`

interface Serving {
  t: TestApp
  backend: TestBackend
  admin: TestUser
  user: TestUser
}

/**
 * An app of its own for the enclosing describe, with a fresh test backend and a database of
 * its own (also in services mode: `POST /v1/predict` answers with whichever model is called
 * `iris`, and other files register the real one); closed after it.
 */
function useServing(
  env: Record<string, string> = {},
  options: { latencyMs?: number; models?: Record<string, TestModelSpec> } = {},
): Serving {
  const serving = {} as Serving
  beforeAll(async () => {
    const backend = createTestBackend({
      models: options.models ?? SPECS,
      latencyMs: options.latencyMs,
    })
    const t = await buildTestApp(env, { inference: backend, privateDatabase: true })
    Object.assign(serving, {
      t,
      backend,
      admin: await createTestUser(t, 'admin'),
      user: await createTestUser(t, 'user'),
    })
  })
  afterAll(() => serving.t?.close())
  return serving
}

/** Registers a version of a model (a new model under a fresh name unless `name` is given). */
async function register(
  s: Serving,
  {
    name = modelName(),
    version = '1.0.0',
    spec = LINEAR,
  }: Partial<{ name: string; version: string; spec: string }> = {},
): Promise<string> {
  await registerVersion(s.t, s.admin, cardFor(name, version), testModelBytes(spec))
  return name
}

async function activate(s: Serving, name: string, version: string) {
  const response = await injectAs(
    s.t,
    s.admin,
  )({ method: 'POST', url: `/v1/models/${name}/versions/${version}/activate` })
  expect(response.statusCode, response.body).toBe(200)
}

function predict(
  s: Serving,
  name: string,
  inputs: unknown,
  { as = s.user, version }: { as?: TestUser; version?: string } = {},
) {
  const query = version === undefined ? '' : `?version=${version}`
  return injectAs(
    s.t,
    as,
  )({ method: 'POST', url: `/v1/models/${name}/predict${query}`, payload: { inputs } })
}

function predictBatch(s: Serving, name: string, instances: unknown[]) {
  return injectAs(
    s.t,
    s.user,
  )({ method: 'POST', url: `/v1/models/${name}/predict/batch`, payload: { instances } })
}

/** The value of one series in Prometheus text, matched by name and the labels given. */
function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match?.[1] !== name) continue
    const have = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    )
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) {
      return Number(match[3])
    }
  }
  return undefined
}

describe('POST /v1/models/{name}/predict', () => {
  const s = useServing()
  let model: string
  beforeAll(async () => {
    model = await register(s)
  })

  it('when a user sends valid inputs, then 200 with the label and probabilities the graph computes, from one run', async () => {
    const name = await register(s)
    const before = s.backend.runs.length
    const response = await predict(s, name, sample())
    expect(response.statusCode, response.body).toBe(200)
    const body = response.json()
    expect(Object.keys(body).sort()).toEqual([
      'cached',
      'latency_ms',
      'model',
      'prediction',
      'probabilities',
      'version',
    ])
    expect(body).toMatchObject({ model: name, version: '1.0.0', cached: false })
    expect(body.latency_ms).toBeGreaterThanOrEqual(0)
    expectComputed(body, sample())
    expect(s.backend.runs.slice(before)).toEqual([{ model: LINEAR, batchSize: 1 }])
  })

  // `undefined` is left out of the JSON body: the input is absent.
  it.each([
    ['a number sent as text', { sepal_length: '5.1' }, 'sepal_length', 'must be a number'],
    ['a boolean for a number', { sepal_width: true }, 'sepal_width', 'must be a number'],
    ['a value below the minimum', { sepal_width: -0.1 }, 'sepal_width', 'must be at least 0 (cm)'],
    [
      'a value above the maximum',
      { petal_length: 10.5 },
      'petal_length',
      'must be at most 10 (cm)',
    ],
    ['a fraction for an integer', { petal_count: 2.5 }, 'petal_count', 'must be an integer'],
    ['an integer above its maximum', { petal_count: 21 }, 'petal_count', 'must be at most 20'],
    ['an undeclared input', { colour: 'red' }, 'colour', 'is not an input of model {model}'],
    ['a required input left out', { petal_length: undefined }, 'petal_length', 'is required'],
    [
      'a required input sent as null',
      { petal_length: null },
      'petal_length',
      'is required and cannot be null',
    ],
  ])(
    'when the inputs hold %s, then 422 naming body.inputs.<input> and nothing runs',
    async (_case, change, input, message) => {
      const before = s.backend.runs.length
      const response = await predict(s, model, { ...sample(), ...change })
      expect(response.statusCode, response.body).toBe(422)
      const problem = response.json()
      expect(problem.code).toBe('VALIDATION_FAILED')
      expect(problem.errors).toEqual([
        { path: `body.inputs.${input}`, message: message.replace('{model}', model) },
      ])
      expect(s.backend.runs.length).toBe(before)
    },
  )

  it('when several inputs are wrong at once, then 422 lists every problem by path', async () => {
    const before = s.backend.runs.length
    const response = await predict(s, model, {
      sepal_length: 'long',
      sepal_width: 11,
      petal_count: 1.5,
      colour: 'red',
    })
    expect(response.statusCode).toBe(422)
    const errors = response.json().errors
    expect(errors).toHaveLength(5)
    expect(errors).toEqual(
      expect.arrayContaining([
        { path: 'body.inputs.colour', message: `is not an input of model ${model}` },
        { path: 'body.inputs.sepal_length', message: 'must be a number' },
        { path: 'body.inputs.sepal_width', message: 'must be at most 10 (cm)' },
        { path: 'body.inputs.petal_length', message: 'is required' },
        { path: 'body.inputs.petal_count', message: 'must be an integer' },
      ]),
    )
    expect(s.backend.runs.length).toBe(before)
  })

  it('when an undeclared input is not a plain identifier, then 422 quotes its name in the path', async () => {
    const response = await predict(s, model, { ...sample(), 'petal.count': 1, 'petal/width': 2 })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'body.inputs["petal.count"]', message: `is not an input of model ${model}` },
      { path: 'body.inputs["petal/width"]', message: `is not an input of model ${model}` },
    ])
  })

  it('when the model does not exist, then 404 MODEL_NOT_FOUND and nothing runs', async () => {
    const before = s.backend.runs.length
    const response = await predict(s, modelName('missing'), sample())
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('MODEL_NOT_FOUND')
    expect(s.backend.runs.length).toBe(before)
  })

  it('when ?version= names a registered, inactive version, then that version answers and the active one stays', async () => {
    const name = await register(s)
    await register(s, { name, version: '1.1.0', spec: 'predict-reversed' })

    const pinned = await predict(s, name, sample(), { version: '1.1.0' })
    expect(pinned.statusCode, pinned.body).toBe(200)
    expect(pinned.json()).toMatchObject({ model: name, version: '1.1.0' })
    expectComputed(pinned.json(), sample(), 'predict-reversed')

    const active = await predict(s, name, sample())
    expect(active.json()).toMatchObject({ model: name, version: '1.0.0' })
    expectComputed(active.json(), sample())
    // The two versions must disagree, or this test could not tell which one answered.
    expect(active.json().prediction).not.toBe(pinned.json().prediction)
  })

  it('when ?version= names no version of the model, then 404 MODEL_VERSION_NOT_FOUND, logged below error level without a stack', async () => {
    const response = await predict(s, model, sample(), { version: '9.9.9' })
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('MODEL_VERSION_NOT_FOUND')
    const lines = s.t.logs.filter((line) => line.version === '9.9.9' && line.model === model)
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) {
      expect(line.level as number).toBeLessThan(50)
      expect(JSON.stringify(line)).not.toContain('    at ')
    }
  })

  it('when ?version= is not MAJOR.MINOR.PATCH, then 422 says what a version looks like and nothing runs', async () => {
    const before = s.backend.runs.length
    const response = await predict(s, model, sample(), { version: 'latest' })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      {
        path: 'query.version',
        message:
          'must be a version as MAJOR.MINOR.PATCH (e.g. 1.0.0) to answer instead of the active one',
      },
    ])
    expect(s.backend.runs.length).toBe(before)
  })

  it('when the model name is not kebab-case, then 422 on params.name and nothing runs', async () => {
    const before = s.backend.runs.length
    const response = await predict(s, 'Not_A_Model', sample())
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'params.name', message: 'must be a model name in kebab-case, e.g. car-price' },
    ])
    expect(s.backend.runs.length).toBe(before)
  })

  it('when the request carries no credentials, then 401 and nothing runs', async () => {
    const before = s.backend.runs.length
    const response = await s.t.app.inject({
      method: 'POST',
      url: `/v1/models/${model}/predict`,
      payload: { inputs: sample(7) },
    })
    expect(response.statusCode).toBe(401)
    expect(response.json().code).toBe('UNAUTHENTICATED')
    expect(s.backend.runs.length).toBe(before)
  })

  it('when a viewer predicts, then 200: every role may read predictions', async () => {
    const viewer = await createTestUser(s.t, 'viewer')
    const response = await predict(s, model, sample(8), { as: viewer })
    expect(response.statusCode, response.body).toBe(200)
    expectComputed(response.json(), sample(8))
  })
})

describe('POST /v1/models/{name}/predict/batch', () => {
  const s = useServing({ PREDICT_BATCH_MAX: '5' })
  let model: string
  beforeAll(async () => {
    model = await register(s)
  })

  it('when some instances are invalid, then 200: valid rows computed in one run, null and errors by body.instances[<i>] for the rest', async () => {
    const before = s.backend.runs.length
    const instances = [
      sample(0),
      { ...sample(), petal_count: -1 },
      sample(5),
      { sepal_width: 3, petal_length: 1, petal_count: 1, colour: 'red' },
      sample(12),
    ]
    const response = await predictBatch(s, model, instances)
    expect(response.statusCode, response.body).toBe(200)
    const body = response.json()
    expect(body).toMatchObject({ model, version: '1.0.0' })
    expect(body.latency_ms).toBeGreaterThanOrEqual(0)
    expect(body.predictions).toHaveLength(5)
    expect(body.predictions[1]).toBeNull()
    expect(body.predictions[3]).toBeNull()
    for (const index of [0, 2, 4]) {
      expectComputed(body.predictions[index], instances[index] as Inputs)
    }
    expect(body.errors).toEqual([
      { path: 'body.instances[1].petal_count', message: 'must be at least 0' },
      { path: 'body.instances[3].colour', message: `is not an input of model ${model}` },
      { path: 'body.instances[3].sepal_length', message: 'is required' },
    ])
    expect(s.backend.runs.slice(before)).toEqual([{ model: LINEAR, batchSize: 3 }])
  })

  it('when every instance is invalid, then 422 with every problem by body.instances[<i>] and nothing runs', async () => {
    const before = s.backend.runs.length
    const response = await predictBatch(s, model, [
      { ...sample(), sepal_length: 'x' },
      { ...sample(), petal_count: 30 },
    ])
    expect(response.statusCode).toBe(422)
    expect(response.json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      errors: [
        { path: 'body.instances[0].sepal_length', message: 'must be a number' },
        { path: 'body.instances[1].petal_count', message: 'must be at most 20' },
      ],
    })
    expect(s.backend.runs.length).toBe(before)
  })

  it('when a batch holds PREDICT_BATCH_MAX instances, then all run as one call', async () => {
    const before = s.backend.runs.length
    const instances = [1, 2, 3, 4, 5].map(sample)
    const response = await predictBatch(s, model, instances)
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json().errors).toEqual([])
    instances.forEach((inputs, index) => {
      expectComputed(response.json().predictions[index], inputs)
    })
    expect(s.backend.runs.slice(before)).toEqual([{ model: LINEAR, batchSize: 5 }])
  })

  it('writes the batch answer as the serializer of its documented schema would, field for field', async () => {
    const response = await predictBatch(s, model, [sample(1), { ...sample(), petal_count: -1 }])
    expect(response.statusCode, response.body).toBe(200)
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
    const documented = s.t.app.swagger().paths?.['/v1/models/{name}/predict/batch']?.post
      ?.responses?.['200'] as { content: Record<string, { schema: object }> }
    const schema = documented.content['application/json']?.schema as object
    // Fastify's own compiler, as the route would use it without its serializer of its own.
    const serialize = SerializerSelector()({}, {})({
      schema,
      method: 'POST',
      url: '',
      httpStatus: '200',
    })
    expect(response.body).toBe(serialize(response.json()))
  })

  it('when a batch holds more than PREDICT_BATCH_MAX instances, then 422 on instances and nothing runs', async () => {
    const before = s.backend.runs.length
    const response = await predictBatch(s, model, [1, 2, 3, 4, 5, 6].map(sample))
    expect(response.statusCode).toBe(422)
    const problem = response.json()
    expect(problem.code).toBe('VALIDATION_FAILED')
    expect(problem.errors).toEqual([
      { path: 'body.instances', message: expect.stringContaining('5') },
    ])
    expect(s.backend.runs.length).toBe(before)
  })
})

describe('POST /v1/predict (the iris shortcut)', () => {
  const s = useServing()
  beforeAll(async () => {
    await register(s, { name: 'iris' })
  })

  it('when four features are sent, then the active iris answers with class, label and probabilities by label, cached the second time', async () => {
    const features = [5.1, 3.5, 1.4, 2]
    const inputs = sample(2)
    const before = s.backend.runs.length
    const first = await injectAs(
      s.t,
      s.user,
    )({ method: 'POST', url: '/v1/predict', payload: { features } })
    expect(first.statusCode, first.body).toBe(200)
    const body = first.json()
    expect(Object.keys(body).sort()).toEqual([
      'cached',
      'class',
      'label',
      'model',
      'probabilities',
      'version',
    ])
    const want = expected(inputs)
    expect(body).toMatchObject({
      class: want.classIndex,
      label: want.prediction,
      model: 'iris',
      version: '1.0.0',
      cached: false,
    })
    expectComputed({ prediction: body.label, probabilities: body.probabilities }, inputs)
    expect(s.backend.runs.slice(before)).toEqual([{ model: LINEAR, batchSize: 1 }])

    const again = await injectAs(
      s.t,
      s.user,
    )({ method: 'POST', url: '/v1/predict', payload: { features } })
    expect(again.json()).toEqual({ ...body, cached: true })
    expect(s.backend.runs.length).toBe(before + 1)
  })

  it.each([
    ['three', [5.1, 3.5, 1.4]],
    ['five', [5.1, 3.5, 1.4, 2, 1]],
  ])(
    'when %s features are sent, then 422 on features and nothing runs',
    async (_count, features) => {
      const before = s.backend.runs.length
      const response = await injectAs(
        s.t,
        s.user,
      )({ method: 'POST', url: '/v1/predict', payload: { features } })
      expect(response.statusCode).toBe(422)
      expect(response.json()).toMatchObject({
        code: 'VALIDATION_FAILED',
        errors: [{ path: 'body.features' }],
      })
      expect(s.backend.runs.length).toBe(before)
    },
  )

  it('when a feature breaks the card, then 422 names it by position', async () => {
    const response = await injectAs(
      s.t,
      s.user,
    )({
      method: 'POST',
      url: '/v1/predict',
      payload: { features: [5.1, 3.5, 11, 2.5] },
    })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([
      { path: 'body.features[2]', message: 'must be at most 10 (cm)' },
      { path: 'body.features[3]', message: 'must be an integer' },
    ])
  })
})

describe('the prediction cache', () => {
  const s = useServing()

  it('when the same inputs are sent twice, then the second answer is cached and runs nothing', async () => {
    const name = await register(s)
    const first = await predict(s, name, sample())
    expect(first.json().cached).toBe(false)
    const before = s.backend.runs.length
    const second = await predict(s, name, sample())
    expect(second.statusCode).toBe(200)
    const { latency_ms: _first, ...fresh } = first.json()
    const { latency_ms: _second, ...cached } = second.json()
    expect(cached).toEqual({ ...fresh, cached: true })
    expect(s.backend.runs.length).toBe(before)
  })

  it('when the same inputs come in another key order and number spelling, then they hit the cache', async () => {
    const name = await register(s)
    await predict(s, name, sample())
    const before = s.backend.runs.length
    const response = await injectAs(
      s.t,
      s.user,
    )({
      method: 'POST',
      url: `/v1/models/${name}/predict`,
      headers: { 'content-type': 'application/json' },
      payload:
        '{"inputs":{"petal_count":2.0,"petal_length":1.40,"sepal_width":3.5,"sepal_length":5.10}}',
    })
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json().cached).toBe(true)
    expectComputed(response.json(), sample())
    expect(s.backend.runs.length).toBe(before)
  })

  it('when different inputs are sent, then they miss the cache', async () => {
    const name = await register(s)
    await predict(s, name, sample(2))
    const before = s.backend.runs.length
    const response = await predict(s, name, sample(3))
    expect(response.json().cached).toBe(false)
    expectComputed(response.json(), sample(3))
    expect(s.backend.runs.length).toBe(before + 1)
  })

  it('when another version is activated, then the next answer comes from it, uncached, never the old answer', async () => {
    const name = await register(s)
    await predict(s, name, sample())
    expect((await predict(s, name, sample())).json()).toMatchObject({
      version: '1.0.0',
      cached: true,
    })
    await register(s, { name, version: '2.0.0', spec: 'predict-reversed' })
    await activate(s, name, '2.0.0')

    const before = s.backend.runs.length
    const after = await predict(s, name, sample())
    expect(after.statusCode, after.body).toBe(200)
    expect(after.json()).toMatchObject({ model: name, version: '2.0.0', cached: false })
    expectComputed(after.json(), sample(), 'predict-reversed')
    expect(s.backend.runs.slice(before)).toEqual([{ model: 'predict-reversed', batchSize: 1 }])
    expect((await predict(s, name, sample())).json()).toMatchObject({
      version: '2.0.0',
      cached: true,
    })
  })

  describe('with PREDICTION_CACHE_TTL_MS=2000', () => {
    // Long enough that the second request lands inside it on a loaded machine (it failed at
    // 300 ms); the expiry is then awaited, not slept for.
    const short = useServing({ PREDICTION_CACHE_TTL_MS: '2000' })

    it('when the entry has expired, then the answer is computed again', async () => {
      const name = await register(short)
      await predict(short, name, sample())
      expect((await predict(short, name, sample())).json().cached).toBe(true)
      let before = 0
      const response = await vi.waitFor(
        async () => {
          before = short.backend.runs.length
          const answer = await predict(short, name, sample())
          if (answer.json().cached) throw new Error('the entry has not expired yet')
          return answer
        },
        { timeout: 20_000, interval: 200 },
      )
      expectComputed(response.json(), sample())
      expect(short.backend.runs.slice(before)).toEqual([{ model: LINEAR, batchSize: 1 }])
    })
  })

  describe('with PREDICTION_CACHE_TTL_MS=0', () => {
    const off = useServing({ PREDICTION_CACHE_TTL_MS: '0' })

    it('when the same inputs are sent three times, then each answer is computed', async () => {
      const name = await register(off)
      const before = off.backend.runs.length
      for (let i = 0; i < 3; i++) {
        const response = await predict(off, name, sample())
        expect(response.statusCode).toBe(200)
        expect(response.json().cached).toBe(false)
      }
      expect(off.backend.runs.length).toBe(before + 3)
    })
  })
})

/** Sends one prediction per count, all at once, and checks each answer against its inputs. */
async function predictConcurrently(s: Serving, name: string, count: number) {
  const inputs = Array.from({ length: count }, (_, i) => sample(i))
  const responses = await Promise.all(inputs.map((row) => predict(s, name, row)))
  responses.forEach((response, i) => {
    expect(response.statusCode, response.body).toBe(200)
    // Rows merged into one run must each come back to their own request.
    expectComputed(response.json(), inputs[i] as Inputs)
  })
}

describe('micro-batching', () => {
  // Some requests arrive while a 20 ms run is busy and wait for it: they must merge.
  const batching = { PREDICTION_CACHE_TTL_MS: '0', INFERENCE_MAX_WAIT_MS: '10' }

  describe('with INFERENCE_MAX_BATCH_SIZE=32 and a MODEL_BATCHING override of 1 for one model', () => {
    const solo = modelName('solo')
    const s = useServing(
      { ...batching, INFERENCE_MAX_BATCH_SIZE: '32', MODEL_BATCHING: `${solo}=1/0` },
      { latencyMs: 20 },
    )

    it('when 16 single predictions arrive at once, then they share runs: some run has more than one row, 16 rows in all', async () => {
      const name = await register(s)
      const before = s.backend.runs.length
      await predictConcurrently(s, name, 16)
      const runs = s.backend.runs.slice(before)
      expect(runs.reduce((sum, run) => sum + run.batchSize, 0)).toBe(16)
      expect(runs.some((run) => run.batchSize > 1)).toBe(true)
    })

    it('when 16 predictions of the overridden model arrive at once, then each runs alone', async () => {
      await register(s, { name: solo })
      const before = s.backend.runs.length
      await predictConcurrently(s, solo, 16)
      const runs = s.backend.runs.slice(before)
      expect(runs).toHaveLength(16)
      expect(runs.every((run) => run.batchSize === 1)).toBe(true)
    })
  })

  describe('with INFERENCE_MAX_BATCH_SIZE=1', () => {
    const s = useServing({ ...batching, INFERENCE_MAX_BATCH_SIZE: '1' }, { latencyMs: 20 })

    it('when 16 single predictions arrive at once, then every run has one row', async () => {
      const name = await register(s)
      const before = s.backend.runs.length
      await predictConcurrently(s, name, 16)
      const runs = s.backend.runs.slice(before)
      expect(runs).toHaveLength(16)
      expect(runs.every((run) => run.batchSize === 1)).toBe(true)
    })
  })
})

describe('the prediction queue', () => {
  describe('with PREDICT_QUEUE_MAX=4, batches of one row and a model held busy', () => {
    const s = useServing({
      PREDICT_QUEUE_MAX: '4',
      INFERENCE_MAX_BATCH_SIZE: '1',
      PREDICTION_CACHE_TTL_MS: '0',
      RATE_LIMIT_MAX: '1000',
    })

    it('when 20 predictions arrive at once, then one runs, four wait, and the rest get 503 PREDICTION_QUEUE_FULL with Retry-After without running, counted by model and reason', async () => {
      const name = await register(s)
      const before = s.backend.runs.length
      // The first run lasts until every refusal is in, however slowly a loaded machine
      // delivers the 20 requests: a model that merely sleeps could finish early and free a place.
      const release = s.backend.hold()
      let answered = 0
      const pending = Array.from({ length: 20 }, (_, i) =>
        predict(s, name, sample(i + 1)).finally(() => answered++),
      )
      try {
        await vi.waitFor(() => expect(answered).toBe(15), { timeout: 20_000, interval: 20 })
      } finally {
        release()
      }
      const responses = await Promise.all(pending)
      const ok = responses.filter((response) => response.statusCode === 200)
      const refused = responses.filter((response) => response.statusCode === 503)
      expect(ok).toHaveLength(5)
      expect(refused).toHaveLength(15)
      for (const response of refused) {
        expect(response.headers['retry-after']).toBe('1')
        expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
        expect(response.json().code).toBe('PREDICTION_QUEUE_FULL')
      }
      expect(s.backend.runs.length - before).toBe(5)
      const metrics = (await s.t.app.inject({ url: '/metrics' })).body
      expect(
        metricValue(metrics, 'model_predictions_rejected_total', {
          model: name,
          reason: 'queue_full',
        }),
      ).toBe(15)
    })

    it('when a batch larger than the bound reaches an idle model, then it runs', async () => {
      const name = await register(s)
      const instances = Array.from({ length: 6 }, (_, i) => sample(i + 1))
      const response = await predictBatch(s, name, instances)
      expect(response.statusCode, response.body).toBe(200)
      expect(response.json().predictions.every((p: unknown) => p !== null)).toBe(true)
    })
  })
})

describe('the prediction rate limit', () => {
  const s = useServing({ PREDICT_RATE_LIMIT_MAX: '3', RATE_LIMIT_MAX: '1000' })

  it('when a caller sends a fourth prediction in the window, then 429 with Retry-After, while its other calls and other callers go on', async () => {
    const name = await register(s)
    for (let i = 0; i < 3; i++) {
      const response = await predict(s, name, sample(i))
      expect(response.statusCode, `prediction ${i + 1}`).toBe(200)
    }
    const before = s.backend.runs.length
    const refused = await predict(s, name, sample(9))
    expect(refused.statusCode).toBe(429)
    expect(refused.json().code).toBe('TOO_MANY_REQUESTS')
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
    expect(s.backend.runs.length).toBe(before)

    const listing = await injectAs(s.t, s.user)({ url: '/v1/models' })
    expect(listing.statusCode, 'the general budget is separate').toBe(200)
    // The caller's first call on the general budget: its predictions were never counted there.
    expect(listing.headers['ratelimit-remaining']).toBe('999')

    const other = await createTestUser(s.t, 'user')
    const theirs = await predict(s, name, sample(9), { as: other })
    expect(theirs.statusCode, 'another caller has a budget of its own').toBe(200)
  })
})

describe('GET /metrics', () => {
  // An app of its own, so the series below hold this describe's predictions only, and a graph
  // no other app registers: the versions left in the shared services-mode database fail to load
  // here, so models_loaded counts this describe's model alone.
  const spec = `predict-metrics-${unique().toLowerCase()}`
  const s = useServing({}, { models: { [spec]: linearClassifierSpec() } })

  it('reports predictions by outcome, cache hits and misses, batch sizes, inference time and loaded versions', async () => {
    const scrape = async () => (await s.t.app.inject({ url: '/metrics' })).body
    expect(metricValue(await scrape(), 'models_loaded')).toBe(0)
    const name = await register(s, { spec })

    await predict(s, name, sample()) // miss, a run of 1
    await predict(s, name, sample()) // hit
    await predict(s, name, { ...sample(), petal_count: -3 }) // invalid
    await predictBatch(s, name, [sample(4), sample(5), { colour: 'red' }]) // 2 ok in a run of 2, 1 invalid

    const text = await scrape()
    const model = { model: name }
    const version = { ...model, version: '1.0.0' }
    expect(metricValue(text, 'predictions_total', { ...version, outcome: 'ok' })).toBe(4)
    expect(metricValue(text, 'predictions_total', { ...version, outcome: 'invalid' })).toBe(2)
    expect(metricValue(text, 'predictions_total', { ...version, outcome: 'error' })).toBeUndefined()
    expect(metricValue(text, 'prediction_cache_requests_total', { ...model, result: 'hit' })).toBe(
      1,
    )
    expect(metricValue(text, 'prediction_cache_requests_total', { ...model, result: 'miss' })).toBe(
      1,
    )
    expect(metricValue(text, 'model_batch_size_count', model)).toBe(2)
    expect(metricValue(text, 'model_batch_size_sum', model)).toBe(3)
    expect(metricValue(text, 'model_batch_size_bucket', { ...model, le: '1' })).toBe(1)
    expect(metricValue(text, 'model_inference_seconds_count', version)).toBe(2)
    expect(metricValue(text, 'model_inference_seconds_sum', version)).toBeGreaterThan(0)
    expect(metricValue(text, 'models_loaded')).toBe(1)
  })
})
