import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  testConfig,
  unique,
} from '../../../../test/helpers.js'
import { irisClassifierSpec, registerVersion, shippedCard } from '../../../../test/models.js'
import { buildApp } from '../../../app.js'
import type { ActiveModelVersion } from '../repository.js'
import { createTestBackend, type TestBackend, testModelBytes } from '../runtime/test-backend.js'
import { createModelServer, MAX_REMEMBERED_FAILURES, type ModelSource } from './model-server.js'

const irisCard = shippedCard('iris')
const SETOSA = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }

/** Spec names of this file, so models other files register never load in its apps. */
const SPEC = { a: 'server-a', b: 'server-b', x: 'server-x', y: 'server-y' }
const everySpec = () =>
  Object.fromEntries(Object.values(SPEC).map((spec) => [spec, irisClassifierSpec()]))

/** A new model on `t` with one version per spec, in order; the first is active. */
async function registerModel(t: TestApp, admin: TestUser, specs: string[]): Promise<string> {
  const name = `server-${unique().toLowerCase()}`
  for (const [index, spec] of specs.entries()) {
    const card = { ...irisCard, name, version: `${index + 1}.0.0` }
    await registerVersion(t, admin, card, testModelBytes(spec))
  }
  return name
}

const count = (list: readonly string[], item: string) => list.filter((x) => x === item).length
const loadsOf = (backend: TestBackend, spec: string) =>
  backend.loads.filter((load) => load.model === spec).length

async function modelsLoaded(t: TestApp): Promise<number> {
  const text = (await t.app.inject({ url: '/metrics' })).body
  const line = text.split('\n').find((row) => row.startsWith('models_loaded '))
  return Number(line?.split(' ')[1])
}

function predict(t: TestApp, user: TestUser, name: string, version?: string) {
  return injectAs(
    t,
    user,
  )({
    method: 'POST',
    url: `/v1/models/${name}/predict${version ? `?version=${version}` : ''}`,
    payload: { inputs: SETOSA },
  })
}

describe('with MODELS_MAX_LOADED=1', () => {
  const backend = createTestBackend({ models: everySpec() })
  let t: TestApp
  let admin: TestUser

  beforeAll(async () => {
    t = await buildTestApp(
      { MODELS_MAX_LOADED: '1', PREDICTION_CACHE_TTL_MS: '0' },
      { inference: backend, privateDatabase: true },
    )
    admin = await createTestUser(t, 'admin')
  })
  afterAll(() => t?.close())

  it('when a pinned second version is predicted, then the least recently used version is unloaded, and the active one reloads on its next prediction', async () => {
    const name = await registerModel(t, admin, [SPEC.a, SPEC.b])
    expect(await modelsLoaded(t)).toBe(1)
    const releasedA = count(backend.releases, SPEC.a)
    const loadsA = loadsOf(backend, SPEC.a)

    const pinned = await predict(t, admin, name, '2.0.0')
    expect(pinned.statusCode, pinned.body).toBe(200)
    expect(pinned.json().version).toBe('2.0.0')
    expect(count(backend.releases, SPEC.a)).toBe(releasedA + 1)
    expect(await modelsLoaded(t)).toBe(1)
    expect(t.logs).toContainEqual(
      expect.objectContaining({
        msg: 'model version unloaded (LRU)',
        model: name,
        version: '1.0.0',
      }),
    )

    const releasedB = count(backend.releases, SPEC.b)
    const active = await predict(t, admin, name)
    expect(active.statusCode, active.body).toBe(200)
    expect(active.json().version).toBe('1.0.0')
    expect(loadsOf(backend, SPEC.a)).toBe(loadsA + 1)
    expect(count(backend.releases, SPEC.b)).toBe(releasedB + 1)
    expect(await modelsLoaded(t)).toBe(1)
  })
})

describe('two instances over one database', () => {
  const backendA = createTestBackend({ models: everySpec(), latencyMs: 5 })
  // The second instance lacks spec x, as a process would whose runtime cannot load the file.
  const { [SPEC.x]: _missing, ...withoutX } = everySpec()
  const backendB = createTestBackend({ models: withoutX })
  let a: TestApp
  let b: TestApp
  let admin: TestUser
  let broken: string
  let healthy: string

  beforeAll(async () => {
    a = await buildTestApp(
      { PREDICTION_CACHE_TTL_MS: '0' },
      { inference: backendA, privateDatabase: true },
    )
    admin = await createTestUser(a, 'admin')
    broken = await registerModel(a, admin, [SPEC.x])
    healthy = await registerModel(a, admin, [SPEC.y])
    // Over the same database, so it starts with both models active.
    const app = await buildApp(testConfig({ PREDICTION_CACHE_TTL_MS: '0' }), {
      database: a.database,
      inference: backendB,
    })
    b = { app, database: a.database, logs: [], close: () => app.close() }
  })
  afterAll(async () => {
    await b?.close()
    await a?.close()
  })

  it('when concurrent first requests pin a version not loaded yet, then they share one load', async () => {
    const name = await registerModel(a, admin, [SPEC.a, SPEC.b])
    const loadsB = loadsOf(backendA, SPEC.b)
    const responses = await Promise.all(
      Array.from({ length: 12 }, () => predict(a, admin, name, '2.0.0')),
    )
    for (const response of responses) {
      expect(response.statusCode, response.body).toBe(200)
      expect(response.json().version).toBe('2.0.0')
    }
    expect(loadsOf(backendA, SPEC.b)).toBe(loadsB + 1)
  })

  it('when an active version fails to load at start, then /ready is 503 naming model:<name>', async () => {
    const response = await b.app.inject({ url: '/ready' })
    expect(response.statusCode).toBe(503)
    const { checks } = response.json()
    expect(checks[`model:${broken}`]).toBe('failing')
    expect(checks[`model:${healthy}`]).toBeUndefined()
    expect(checks.database).toBe('ok')
  })

  it('when an active version fails to load, then the KServe probes say not ready', async () => {
    const server = await b.app.inject({ url: '/v2/health/ready' })
    expect(server.statusCode).toBe(503)
    expect(server.json()).toMatchObject({ ready: false, error: expect.any(String) })
    const model = await b.app.inject({
      url: `/v2/models/${broken}/ready`,
      headers: admin.headers,
    })
    expect(model.statusCode).toBe(400)
    expect(model.json()).toMatchObject({ code: 'MODEL_NOT_READY', ready: false })
    const other = await b.app.inject({ url: `/v2/models/${healthy}/ready`, headers: admin.headers })
    expect(other.json()).toMatchObject({ name: healthy, ready: true })
  })

  it('when the model that failed to load is predicted, then 503 MODEL_UNAVAILABLE', async () => {
    const response = await predict(b, admin, broken)
    expect(response.statusCode).toBe(503)
    expect(response.json().code).toBe('MODEL_UNAVAILABLE')
  })

  it('when another model is predicted, then it answers', async () => {
    const response = await predict(b, admin, healthy)
    expect(response.statusCode, response.body).toBe(200)
    expect(response.json()).toMatchObject({ model: healthy, version: '1.0.0' })
  })

  it('when that model is predicted on the instance that loaded it, then it answers', async () => {
    const response = await predict(a, admin, broken)
    expect(response.statusCode, response.body).toBe(200)
    const ready = (await a.app.inject({ url: '/ready' })).json()
    expect(ready.checks[`model:${broken}`]).toBeUndefined()
  })
})

/** Version `version` of model `name`: graph a for 1.0.0, graph b for any other. */
function servable(version: string, name = 'm'): ActiveModelVersion {
  return {
    name,
    version,
    card: { ...irisCard, name, version },
    onnx: testModelBytes(version === '1.0.0' ? SPEC.a : SPEC.b),
  }
}

/** A model server over `source` alone, without an app, batching briefly and logging nothing. */
function serverOver(backend: TestBackend, source: ModelSource, maxLoaded = 8) {
  return createModelServer({
    backend,
    source,
    maxLoaded,
    batching: () => ({ maxBatchSize: 8, maxWaitMs: 1 }),
    log: pino({ level: 'silent' }),
  })
}

describe('activations of one model', () => {
  it('when a slow version is activated and then the current one again, then the second call wins', async () => {
    const backend = createTestBackend({ models: everySpec() })
    const server = serverOver(backend, {
      activeVersions: async () => [servable('1.0.0')],
      // 2.0.0's bytes take a while to arrive, as a large graph read from the database does.
      findServable: async (_name, version) => {
        if (version === '2.0.0') await sleep(50)
        return servable(version)
      },
      activeVersionOf: async () => '1.0.0',
      activeVersionNames: async () => [{ name: 'm', version: '1.0.0' }],
    })
    try {
      await server.start()
      // Two broadcasts in quick succession: roll forward, then straight back.
      const forward = server.activate('m', '2.0.0')
      await server.activate('m', '1.0.0')
      await forward
      expect((await server.resolve('m')).version).toBe('1.0.0')
      expect(server.states()).toEqual([
        { name: 'm', version: '1.0.0', active: true, state: 'loaded' },
      ])
      expect(count(backend.releases, SPEC.b)).toBe(1)
    } finally {
      await server.close()
    }
  })
})

describe('starting with more active models than MODELS_MAX_LOADED', () => {
  it('loads the first ones by name and the others on their first request', async () => {
    const backend = createTestBackend({ models: everySpec() })
    const names = ['m-a', 'm-b', 'm-c']
    const server = serverOver(
      backend,
      {
        activeVersions: async () => names.map((name) => servable('1.0.0', name)),
        findServable: async (name) => servable('1.0.0', name),
        activeVersionOf: async () => '1.0.0',
        activeVersionNames: async () => names.map((name) => ({ name, version: '1.0.0' })),
      },
      2,
    )
    try {
      await server.start()
      expect(backend.loads).toHaveLength(2)
      expect(server.isReady('m-a') && server.isReady('m-b')).toBe(true)
      expect(server.isReady('m-c')).toBe(false)
      // Not loaded is not failed: the instance is ready.
      expect(server.allActiveReady()).toBe(true)
      expect((await server.resolve('m-c')).version).toBe('1.0.0')
      expect(backend.loads).toHaveLength(3)
      expect(server.loadedCount()).toBe(2)
    } finally {
      await server.close()
    }
  })
})

describe('catching up with the database', () => {
  it('when an activation broadcast was missed, then sync switches to the version the database names', async () => {
    const backend = createTestBackend({ models: everySpec() })
    let inDatabase = '1.0.0'
    const server = serverOver(backend, {
      activeVersions: async () => [servable(inDatabase)],
      findServable: async (_name, version) => servable(version),
      activeVersionOf: async () => inDatabase,
      activeVersionNames: async () => [
        { name: 'm', version: inDatabase },
        // Never served here: left to be looked up on its first request.
        { name: 'other', version: '1.0.0' },
      ],
    })
    try {
      await server.start()
      await server.sync()
      expect((await server.resolve('m')).version).toBe('1.0.0')
      // Another instance activated 2.0.0; its broadcast never arrived here.
      inDatabase = '2.0.0'
      expect((await server.resolve('m')).version).toBe('1.0.0')
      await server.sync()
      expect((await server.resolve('m')).version).toBe('2.0.0')
      expect(count(backend.releases, SPEC.a)).toBe(1)
      expect(server.states().map((state) => state.name)).toEqual(['m'])
    } finally {
      await server.close()
    }
  })
})

describe('versions that do not exist', () => {
  const source = (findServable: ModelSource['findServable']): ModelSource => ({
    activeVersions: async () => [servable('1.0.0')],
    findServable,
    activeVersionOf: async () => '1.0.0',
    activeVersionNames: async () => [{ name: 'm', version: '1.0.0' }],
  })

  it('when many distinct unknown versions are asked for, then the model server keeps no state for them', async () => {
    const backend = createTestBackend({ models: everySpec() })
    const server = serverOver(
      backend,
      source(async (_name, version) => (version === '1.0.0' ? servable(version) : undefined)),
    )
    try {
      await server.start()
      const before = server.states()
      for (let i = 0; i < 200; i++) {
        await expect(server.resolve('m', { version: `9.9.${i}` })).rejects.toMatchObject({
          code: 'MODEL_VERSION_NOT_FOUND',
        })
      }
      expect(server.states()).toEqual(before)
    } finally {
      await server.close()
    }
  })

  it('when the lookup of many distinct versions fails, then the model server keeps no state for them', async () => {
    const backend = createTestBackend({ models: everySpec() })
    const server = serverOver(
      backend,
      source(async (_name, version) => {
        if (version === '1.0.0') return servable(version)
        throw new Error('the database is away')
      }),
    )
    try {
      await server.start()
      const before = server.states()
      for (let i = 0; i < 200; i++) {
        await expect(server.resolve('m', { version: `9.9.${i}` })).rejects.toThrow()
      }
      expect(server.states()).toEqual(before)
    } finally {
      await server.close()
    }
  })

  it('when many registered versions fail to load, then at most a bounded number of failures is remembered', async () => {
    const backend = createTestBackend({ models: everySpec() })
    const server = serverOver(
      backend,
      source(async (name, version) =>
        version === '1.0.0'
          ? servable(version)
          : { ...servable(version, name), onnx: new Uint8Array([1, 2, 3]) },
      ),
    )
    try {
      await server.start()
      for (let i = 0; i < 200; i++) {
        await expect(server.resolve('m', { version: `2.0.${i}` })).rejects.toMatchObject({
          code: 'MODEL_UNAVAILABLE',
        })
      }
      const failed = server.states().filter((state) => state.state === 'failed')
      expect(failed.length).toBeLessThanOrEqual(MAX_REMEMBERED_FAILURES)
      expect(failed.map((state) => state.version)).toContain('2.0.199')
      expect(server.isReady('m')).toBe(true)
    } finally {
      await server.close()
    }
  })
})
