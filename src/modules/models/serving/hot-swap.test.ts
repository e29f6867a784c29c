import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  SERVICES_MODE,
  type TestApp,
  type TestUser,
  unique,
} from '../../../../test/helpers.js'
import {
  IRIS_LIKE_REVERSED,
  irisClassifierSpec,
  registerVersion,
  shippedCard,
} from '../../../../test/models.js'
import { type InferenceBackend, ModelLoadError } from '../runtime/backend.js'
import {
  createTestBackend,
  IRIS_LIKE,
  type LinearClassifier,
  linearClassifierReference,
  testModelBytes,
} from '../runtime/test-backend.js'

const irisCard = shippedCard('iris')
const LABELS = ['setosa', 'versicolor', 'virginica']

/** Each version's weights: the second reverses the classes, so every answer tells them apart. */
const WEIGHTS: Record<string, LinearClassifier> = {
  '1.0.0': IRIS_LIKE,
  '2.0.0': IRIS_LIKE_REVERSED,
  '3.0.0': { weights: IRIS_LIKE.weights, bias: [5, 0, 0] },
}
const SPECS: Record<string, string> = { '1.0.0': 'swap-a', '2.0.0': 'swap-b', '3.0.0': 'swap-c' }
const backend = createTestBackend({
  models: Object.fromEntries(
    Object.entries(SPECS).map(([version, spec]) => [
      spec,
      irisClassifierSpec(WEIGHTS[version] as LinearClassifier),
    ]),
  ),
  latencyMs: 15,
})

/** Specs whose loads fail from now on, as a corrupted file or a full disk would make them. */
const broken = new Set<string>()
const inference: InferenceBackend = {
  name: backend.name,
  load(bytes, options) {
    const spec = new TextDecoder().decode(bytes).split(':').at(-1) ?? ''
    if (broken.has(spec)) {
      return Promise.reject(new ModelLoadError('invalid_model', `spec ${spec} is broken`))
    }
    return backend.load(bytes, options)
  },
}

const env = {
  PREDICTION_CACHE_TTL_MS: '0',
  INFERENCE_MAX_BATCH_SIZE: '32',
  INFERENCE_MAX_WAIT_MS: '2',
}

let a: TestApp
let admin: TestUser
let user: TestUser

beforeAll(async () => {
  a = await buildTestApp(env, { inference, privateDatabase: true })
  admin = await createTestUser(a, 'admin')
  user = await createTestUser(a, 'user')
})
afterAll(() => a?.close())

/** A new model with a version per entry of `versions`; the first one is active. */
async function registerModel(versions: string[]): Promise<string> {
  const name = `swap-${unique().toLowerCase()}`
  for (const version of versions) {
    const card = { ...irisCard, name, version }
    await registerVersion(a, admin, card, testModelBytes(SPECS[version] as string))
  }
  return name
}

async function activate(t: TestApp, name: string, version: string) {
  return injectAs(
    t,
    admin,
  )({ method: 'POST', url: `/v1/models/${name}/versions/${version}/activate` })
}

interface Outcome {
  status: number
  body: string
  version?: string
  /** Whether the answer is what the version it names computes for the inputs sent. */
  consistent: boolean
  startedAt: number
  finishedAt: number
}

/** Whether `body` is exactly what `version`'s weights answer for `features`. */
function computedBy(version: string, features: number[], body: Record<string, unknown>): boolean {
  const weights = WEIGHTS[version]
  if (!weights) return false
  // The graph sees float32 inputs; near a tie, rounding decides the class.
  const expected = linearClassifierReference(features.map(Math.fround), weights)
  const probabilities = body.probabilities as Record<string, number>
  return (
    body.prediction === LABELS[expected.label] &&
    LABELS.every(
      (label, k) =>
        Math.abs((probabilities[label] ?? Number.NaN) - (expected.probabilities[k] ?? 0)) < 1e-6,
    )
  )
}

interface Load {
  outcomes: Outcome[]
  stop(): Promise<void>
}

/** `loops` request loops predicting `name` on `t` until stopped, every outcome recorded. */
function runLoad(t: TestApp, name: string, loops: number): Load {
  const outcomes: Outcome[] = []
  let running = true
  const features = () => Array.from({ length: 4 }, () => Math.round(Math.random() * 100) / 10)
  async function loop() {
    while (running) {
      const x = features()
      const [sepal_length, sepal_width, petal_length, petal_width] = x
      const startedAt = performance.now()
      const response = await injectAs(
        t,
        user,
      )({
        method: 'POST',
        url: `/v1/models/${name}/predict`,
        payload: { inputs: { sepal_length, sepal_width, petal_length, petal_width } },
      })
      const body = response.statusCode === 200 ? response.json() : undefined
      outcomes.push({
        status: response.statusCode,
        body: response.body,
        version: body?.version,
        consistent: body !== undefined && computedBy(body.version, x, body),
        startedAt,
        finishedAt: performance.now(),
      })
    }
  }
  const all = Promise.all(Array.from({ length: loops }, loop))
  return {
    outcomes,
    async stop() {
      running = false
      await all
    },
  }
}

interface Activation {
  version: string
  calledAt: number
  returnedAt: number
}

/**
 * The versions that may answer a request: those that served at some moment between its start
 * and its end. A version serves from the call that activates it (it may switch at any point of
 * the call) until the next activation returns.
 */
function versionsServingDuring(outcome: Outcome, initial: string, activations: Activation[]) {
  const periods = [
    { version: initial, from: Number.NEGATIVE_INFINITY },
    ...activations.map((activation) => ({
      version: activation.version,
      from: activation.calledAt,
    })),
  ].map((period, k) => ({
    ...period,
    until: activations[k]?.returnedAt ?? Number.POSITIVE_INFINITY,
  }))
  return periods
    .filter((period) => period.from <= outcome.finishedAt && outcome.startedAt <= period.until)
    .map((period) => period.version)
}

const count = (list: readonly string[], item: string) => list.filter((x) => x === item).length

/**
 * Waits until `answers` requests that started after `since` have been answered: enough load
 * to judge by on any machine, where after a fixed sleep the count depends on its speed.
 */
async function answeredSince(load: Load, since: number, answers: number) {
  await vi.waitFor(
    () =>
      expect(load.outcomes.filter((o) => o.startedAt > since).length).toBeGreaterThanOrEqual(
        answers,
      ),
    { timeout: 30_000, interval: 10 },
  )
}

describe('activating a version under load', () => {
  it('when versions are swapped three times under concurrent predictions, then no request fails and each answer comes whole from one version', async () => {
    const name = await registerModel(['1.0.0', '2.0.0'])
    const sequence = ['2.0.0', '1.0.0', '2.0.0']
    const runsBefore = backend.runs.length
    const load = runLoad(a, name, 8)
    const activations: Activation[] = []
    let previous = '1.0.0'
    for (const version of sequence) {
      await answeredSince(load, activations.at(-1)?.returnedAt ?? 0, 20)
      const released = count(backend.releases, SPECS[previous] as string)
      const calledAt = performance.now()
      const response = await activate(a, name, version)
      activations.push({ version, calledAt, returnedAt: performance.now() })
      expect(response.statusCode, response.body).toBe(200)
      expect(response.json().active_version).toBe(version)
      // The swapped-out version is released once what it had queued has run.
      expect(count(backend.releases, SPECS[previous] as string)).toBe(released + 1)
      previous = version
    }
    await answeredSince(load, activations.at(-1)?.returnedAt ?? 0, 20)
    await load.stop()

    const { outcomes } = load
    const failed = outcomes.filter((outcome) => outcome.status !== 200)
    expect(failed.map((outcome) => `${outcome.status} ${outcome.body}`)).toEqual([])
    expect(outcomes.filter((outcome) => !outcome.consistent)).toEqual([])
    for (const outcome of outcomes) {
      expect(versionsServingDuring(outcome, '1.0.0', activations)).toContain(outcome.version)
    }
    // Between two activations, every request is answered by the one that returned last.
    activations.forEach((activation, k) => {
      const between = outcomes.filter(
        (o) =>
          o.startedAt > activation.returnedAt &&
          o.finishedAt < (activations[k + 1]?.calledAt ?? Number.POSITIVE_INFINITY),
      )
      expect(between.length, `requests after activating ${activation.version}`).toBeGreaterThan(5)
      expect(between.filter((o) => o.version !== activation.version)).toEqual([])
    })
    const runs = backend.runs.slice(runsBefore)
    expect(runs.some((run) => run.batchSize > 1)).toBe(true)
  })

  it('when the version being activated fails to load, then 503 MODEL_UNAVAILABLE and the old version keeps serving without a failed request', async () => {
    const name = await registerModel(['1.0.0', '3.0.0'])
    const load = runLoad(a, name, 4)
    await answeredSince(load, 0, 5)
    broken.add(SPECS['3.0.0'] as string)
    try {
      const response = await activate(a, name, '3.0.0')
      expect(response.statusCode, response.body).toBe(503)
      expect(response.json().code).toBe('MODEL_UNAVAILABLE')
      await answeredSince(load, performance.now(), 5)
    } finally {
      broken.delete(SPECS['3.0.0'] as string)
      await load.stop()
    }
    const model = await injectAs(a, user)({ url: `/v1/models/${name}` })
    expect(model.json().active_version).toBe('1.0.0')
    const { outcomes } = load
    expect(outcomes.length).toBeGreaterThan(10)
    expect(outcomes.filter((outcome) => outcome.status !== 200)).toEqual([])
    expect(outcomes.every((outcome) => outcome.version === '1.0.0' && outcome.consistent)).toBe(
      true,
    )
    const ready = await a.app.inject({ url: '/ready' })
    expect(ready.json().checks?.[`model:${name}`]).toBeUndefined()
  })

  // Two instances share an activation only through Redis pub/sub, which embedded mode has not.
  describe.skipIf(!SERVICES_MODE)('on two instances', () => {
    let b: TestApp

    beforeAll(async () => {
      b = await buildTestApp(env, { inference, database: a.database })
    })
    afterAll(() => b?.close())

    it('when a version is activated on one instance, then the other switches to it for good without a failed request', async () => {
      const name = await registerModel(['1.0.0', '2.0.0'])
      const load = runLoad(b, name, 4)
      await answeredSince(load, 0, 5)
      const response = await activate(a, name, '2.0.0')
      expect(response.statusCode, response.body).toBe(200)
      // How soon B hears of it is the pub/sub round trip, which a loaded machine stretches.
      const first = await vi.waitFor(
        () => {
          const answer = load.outcomes.find((o) => o.version === '2.0.0')
          if (!answer) throw new Error('instance B still answers with 1.0.0')
          return answer
        },
        { timeout: 30_000, interval: 10 },
      )
      // B had switched by the time this answer was complete.
      const switchedAt = first.finishedAt
      await answeredSince(load, switchedAt, 10)
      await load.stop()
      const { outcomes } = load
      expect(outcomes.filter((outcome) => outcome.status !== 200)).toEqual([])
      expect(outcomes.filter((outcome) => !outcome.consistent)).toEqual([])
      // Once B has switched it never answers with the old version again.
      const after = outcomes.filter((o) => o.startedAt > switchedAt)
      expect(after.length).toBeGreaterThan(0)
      expect(after.filter((o) => o.version !== '2.0.0')).toEqual([])
    })
  })
})
