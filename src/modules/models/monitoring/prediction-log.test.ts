import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, injectAs, unique } from '../../../../test/helpers.js'
import { registerVersion } from '../../../../test/models.js'
import { IRIS_GRAPH, irisInputs, type ServedIris, serveIrisLike } from '../../../../test/serving.js'
import type { DatabaseHandle } from '../../../db/client.js'
import { testModelBytes } from '../runtime/test-backend.js'
import { createPredictionLog } from './prediction-log.js'
import { createPredictionLogRepository, encodeLoggedRequest } from './repository.js'

const silent = pino({ level: 'silent' })

/** Polls `read` until `done` holds, for at most five seconds. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5000
  for (;;) {
    const value = await read()
    if (done(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

async function counter(registry: Registry, outcome: string): Promise<number> {
  const metric = await registry.getSingleMetric('prediction_log_records_total')?.get()
  return metric?.values.find((value) => value.labels.outcome === outcome)?.value ?? 0
}

describe('the prediction log writer', () => {
  let database: DatabaseHandle
  beforeAll(async () => {
    database = await createTestDatabase()
  })
  afterAll(() => database?.close())

  const prediction = (model: string, i: number) => ({
    model,
    version: '1.0.0',
    inputs: { x: i },
    output: { prediction: 'a' },
    latencyMs: 1,
  })

  function writer(options: { rate: number; bufferMax?: number; random?: () => number }) {
    const registry = new Registry()
    const repository = createPredictionLogRepository(database.db)
    const log = createPredictionLog({
      repository,
      sampleRate: () => options.rate,
      bufferMax: options.bufferMax ?? 100,
      // Written by hand below, not by the timer.
      flushIntervalMs: 60_000,
      metrics: registry,
      log: silent,
      random: options.random,
    })
    return { log, registry, repository }
  }

  it('when the sample rate is one half, then exactly the predictions whose draw falls below it are written', async () => {
    const draws = [0.1, 0.9, 0.4, 0.6, 0.49, 0.5]
    const { log, repository, registry } = writer({ rate: 0.5, random: () => draws.shift() ?? 1 })
    const model = `log-${unique().toLowerCase()}`
    for (let i = 0; i < 6; i++) log.record(prediction(model, i))
    await log.close()
    const { rows, total } = await repository.page(model, {}, { limit: 10, offset: 0 })
    expect(total).toBe(3)
    expect(rows.map((row) => row.inputs.x).sort()).toEqual([0, 2, 4])
    expect(await counter(registry, 'written')).toBe(3)
  })

  it('when the buffer is full, then further predictions are dropped and counted at once, and the buffered ones still written', async () => {
    const { log, repository, registry } = writer({ rate: 1, bufferMax: 3 })
    const model = `log-${unique().toLowerCase()}`
    for (let i = 0; i < 5; i++) log.record(prediction(model, i))
    // Recording never waits for the database: the drops are counted before any row is written.
    expect(await counter(registry, 'dropped')).toBe(2)
    expect((await repository.page(model, {}, { limit: 10, offset: 0 })).total).toBe(0)
    await log.close()
    expect((await repository.page(model, {}, { limit: 10, offset: 0 })).total).toBe(3)
  })

  it('when rows hold quotes, backslashes, braces, non-ASCII text and nulls, then one write stores every value as given', async () => {
    const repository = createPredictionLogRepository(database.db)
    const model = `log-${unique().toLowerCase()}`
    const at = new Date('2026-11-30T12:34:56.789Z')
    const userId = randomUUID()
    const awkward = {
      text: 'a "quoted", {braced} \\ back\\slash, ø, 日本, \u0001',
      list: [1.5, null],
    }
    const given = [
      {
        model,
        version: '1.0.0',
        inputs: awkward,
        output: { prediction: 'NULL' },
        latencyMs: 0.125,
        requestId: 'r-1',
        userId,
        apiKeyId: null,
        createdAt: at,
      },
      {
        model,
        version: '1.0.0',
        inputs: { x: 2 },
        output: { prediction: null },
        latencyMs: 3,
        requestId: null,
        userId: null,
        apiKeyId: null,
        createdAt: new Date(at.getTime() + 1),
      },
    ]
    await repository.insertEncoded(
      given.map(({ inputs, output, ...request }) =>
        encodeLoggedRequest(request, [{ inputs, output }]),
      ),
    )
    const { rows } = await repository.page(model, {}, { limit: 10, offset: 0 })
    // Newest first: the reverse of the order written.
    expect(rows.reverse()).toMatchObject(given)
  })

  it('when a write fails, then its rows are counted as failed and nothing is thrown', async () => {
    const registry = new Registry()
    const log = createPredictionLog({
      repository: {
        insertEncoded: () => database.db.execute('SELECT * FROM no_such_table').then(() => {}),
      },
      sampleRate: () => 1,
      bufferMax: 10,
      flushIntervalMs: 60_000,
      metrics: registry,
      log: silent,
    })
    log.record(prediction('log-failing', 1))
    await expect(log.close()).resolves.toBeUndefined()
    expect(await counter(registry, 'failed')).toBe(1)
  })

  it('when a request records several predictions, then each is sampled, bounded and written on its own with what they share', async () => {
    const draws = [0.1, 0.9, 0.4, 0.3]
    const { log, repository, registry } = writer({
      rate: 0.5,
      bufferMax: 2,
      random: () => draws.shift() ?? 1,
    })
    const model = `log-${unique().toLowerCase()}`
    const userId = randomUUID()
    log.recordAll({
      model,
      version: '1.0.0',
      predictions: [0, 1, 2, 3].map((x) => ({ inputs: { x }, output: { prediction: `p${x}` } })),
      latencyMs: 2.5,
      context: { requestId: 'r-batch', caller: { userId, apiKeyId: null } },
    })
    // Sampled: 0, 2 and 3; the buffer holds two of them, the third is dropped.
    expect(await counter(registry, 'dropped')).toBe(1)
    await log.close()
    const { rows } = await repository.page(model, {}, { limit: 10, offset: 0 })
    expect(rows.map((row) => row.inputs.x).sort()).toEqual([0, 2])
    for (const row of rows) {
      expect(row).toMatchObject({
        version: '1.0.0',
        output: { prediction: `p${row.inputs.x}` },
        latencyMs: 2.5,
        requestId: 'r-batch',
        userId,
        apiKeyId: null,
      })
    }
    expect(await counter(registry, 'written')).toBe(2)
  })

  it('when a prediction cannot be encoded as JSON, then its rows count as failed and the request goes on', async () => {
    const { log, registry } = writer({ rate: 1 })
    expect(() =>
      log.record({ ...prediction('log-bigint', 1), inputs: { x: 1n } as Record<string, unknown> }),
    ).not.toThrow()
    await log.close()
    expect(await counter(registry, 'failed')).toBe(1)
    expect(await counter(registry, 'written')).toBe(0)
  })

  it('when the sample rate is zero, then nothing is buffered', async () => {
    const { log, registry } = writer({ rate: 0 })
    log.record(prediction('log-off', 1))
    await log.close()
    expect(await counter(registry, 'written')).toBe(0)
    expect(await counter(registry, 'dropped')).toBe(0)
  })
})

describe('GET /v1/models/{name}/predictions', () => {
  let s: ServedIris
  beforeAll(async () => {
    s = await serveIrisLike({
      PREDICTION_LOG_FLUSH_INTERVAL_MS: '20',
      PREDICTION_CACHE_TTL_MS: '0',
    })
  }, 120_000)
  afterAll(() => s?.t.close())

  const list = (query = '', user = s.admin) =>
    injectAs(s.t, user)({ method: 'GET', url: `/v1/models/${s.name}/predictions${query}` })

  it('when a caller predicts, then an admin finds the prediction with its inputs, answer, request id and caller', async () => {
    const answer = await injectAs(
      s.t,
      s.user,
    )({ method: 'POST', url: `/v1/models/${s.name}/predict`, payload: { inputs: irisInputs(2) } })
    const page = await eventually(
      async () => (await list()).json(),
      // The page and its count are two queries: a write may land between them.
      (body) => body.items.length >= 1,
    )
    expect(page).toMatchObject({ page: 1, page_size: 20, total: 1, total_pages: 1 })
    expect(page.items[0]).toMatchObject({
      model: s.name,
      version: '1.0.0',
      inputs: irisInputs(2),
      output: { prediction: answer.json().prediction, probabilities: answer.json().probabilities },
      request_id: answer.headers['x-request-id'],
      caller: { user_id: s.user.id, api_key_id: null },
    })
    expect(page.items[0].latency_ms).toBeGreaterThanOrEqual(0)
  })

  it('when a batch and the iris shortcut predict, then every valid instance is logged, newest first', async () => {
    const before = (await list()).json().total
    await injectAs(
      s.t,
      s.user,
    )({
      method: 'POST',
      url: `/v1/models/${s.name}/predict/batch`,
      payload: { instances: [irisInputs(0), { sepal_length: 'x' }, irisInputs(1)] },
    })
    const page = await eventually(
      async () => (await list()).json(),
      (body) => body.total >= before + 2,
    )
    expect(page.total).toBe(before + 2)
  })

  it('when the range is empty or reversed, then nothing is listed, or 422', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString()
    const later = new Date(Date.now() + 7_200_000).toISOString()
    const empty = await list(`?from=${future}&to=${later}`)
    expect(empty.json(), empty.body).toMatchObject({ items: [], total: 0 })
    const reversed = await list(`?from=${future}&to=2020-01-01T00:00:00Z`)
    expect(reversed.statusCode).toBe(422)
    expect(reversed.json().errors).toEqual([
      { path: 'querystring.from', message: 'must be before to' },
    ])
  })

  it('when the caller is not an admin, then 403; when the model does not exist, then 404', async () => {
    expect((await list('', s.user)).statusCode).toBe(403)
    const missing = await injectAs(
      s.t,
      s.admin,
    )({ method: 'GET', url: '/v1/models/nope/predictions' })
    expect(missing.statusCode).toBe(404)
  })
})

describe('PREDICTION_LOG_SAMPLING', () => {
  it('when one model is sampled at 1 over a default rate of 0, then its predictions are logged and another model’s are not', {
    timeout: 120_000,
  }, async () => {
    const sampled = `iris-${unique().toLowerCase()}`
    const s = await serveIrisLike(
      {
        PREDICTION_LOG_SAMPLE_RATE: '0',
        PREDICTION_LOG_SAMPLING: `${sampled}=1`,
        PREDICTION_LOG_FLUSH_INTERVAL_MS: '20',
        PREDICTION_CACHE_TTL_MS: '0',
      },
      { name: sampled },
    )
    try {
      const other = `iris-${unique().toLowerCase()}`
      await registerVersion(s.t, s.admin, { ...s.card, name: other }, testModelBytes(IRIS_GRAPH))
      const predict = (name: string) =>
        injectAs(
          s.t,
          s.user,
        )({ method: 'POST', url: `/v1/models/${name}/predict`, payload: { inputs: irisInputs(1) } })
      const total = async (name: string) =>
        (
          await injectAs(s.t, s.admin)({ method: 'GET', url: `/v1/models/${name}/predictions` })
        ).json().total as number
      expect((await predict(other)).statusCode).toBe(200)
      expect((await predict(sampled)).statusCode).toBe(200)
      // Rows are written in the order they were recorded: once the later one is in, the
      // earlier one would be too, had it been sampled.
      expect(
        await eventually(
          () => total(sampled),
          (count) => count >= 1,
        ),
      ).toBe(1)
      expect(await total(other)).toBe(0)
    } finally {
      await s.t.close()
    }
  })
})
