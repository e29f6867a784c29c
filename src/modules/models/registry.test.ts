import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { and, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPrivateTestDatabase, unique } from '../../../test/helpers.js'
import { MODELS_DIR, type ShippedModel, shippedBytes, shippedCard } from '../../../test/models.js'
import { type DatabaseHandle, inTransaction } from '../../db/client.js'
import { auditEvents } from '../../db/schema/index.js'
import { AppError, isForeignKeyViolation } from '../../shared/errors.js'
import { type Actor, SYSTEM_ACTOR } from '../audit/actor.js'
import { createUserRepository } from '../users/repository.js'
import type { ModelCard } from './card.js'
import { createModelRegistry, type ModelRegistry } from './registry.js'
import { createModelRepository } from './repository.js'
import type { InferenceBackend, LoadedModel } from './runtime/backend.js'
import { createOnnxBackend } from './runtime/onnx-backend.js'
import { brokenGraphModel, notOnnxBytes } from './runtime/test-models.js'

let database: DatabaseHandle
let registry: ModelRegistry
let actor: Actor
/** Every session the registry loads, so a test can check it was released. */
const sessions: { released: boolean }[] = []

/** The ONNX backend, recording whether each loaded session is released. */
function recordingBackend(inner: InferenceBackend): InferenceBackend {
  return {
    name: inner.name,
    async load(bytes, options) {
      const model = await inner.load(bytes, options)
      const session = { released: false }
      sessions.push(session)
      const recorded: LoadedModel = {
        signature: model.signature,
        run: (feeds) => model.run(feeds),
        release: () => {
          session.released = true
          return model.release()
        },
      }
      return recorded
    },
  }
}

beforeAll(async () => {
  database = await createPrivateTestDatabase()
  registry = createModelRegistry({
    models: createModelRepository(database.db),
    inTransaction: inTransaction(database.db),
    backend: recordingBackend(createOnnxBackend({ intraOpNumThreads: 1 })),
  })
  const user = await createUserRepository(database.db).insert({
    email: `model-admin-${unique().toLowerCase()}@example.com`,
    fullName: 'Model admin',
    role: 'admin',
    passwordHash: 'not-a-real-hash',
  })
  actor = { ...SYSTEM_ACTOR, userId: user.id, requestId: 'req-models' }
})
afterAll(() => database.close())

/** A shipped model under a name of its own, so test files and reruns never collide. */
function shipped(model: ShippedModel, overrides: Partial<ModelCard> = {}) {
  const card = { ...shippedCard(model), name: `${model}-${unique().toLowerCase()}`, ...overrides }
  return { card, onnx: shippedBytes(model), actor }
}

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  )
  if (!(error instanceof AppError)) throw new Error(`expected an AppError, got ${String(error)}`)
  return error
}

function auditOf(name: string) {
  return database.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.resourceType, 'model'), eq(auditEvents.resourceId, name)))
    .orderBy(auditEvents.at)
}

describe('register', () => {
  it.each(['iris', 'car-price'] as const)(
    'stores the shipped %s model as its first, active version and audits it',
    async (model) => {
      const upload = shipped(model)
      const before = sessions.length
      const stored = await registry.register(upload)

      expect(stored).toMatchObject({
        name: upload.card.name,
        task: upload.card.task,
        active_version: '1.0.0',
        card: upload.card,
        metrics: upload.card.metrics,
      })
      expect(stored.versions).toEqual([
        {
          version: '1.0.0',
          active: true,
          onnx_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
          size_bytes: upload.onnx.byteLength,
          metrics: upload.card.metrics,
          created_at: expect.any(String),
          created_by: actor.userId,
        },
      ])
      expect(sessions.slice(before)).toEqual([{ released: true }])

      const [event, ...more] = await auditOf(upload.card.name)
      expect(more).toEqual([])
      expect(event).toMatchObject({
        action: 'create',
        actorUserId: actor.userId,
        requestId: 'req-models',
        changes: {
          version: { after: '1.0.0' },
          size_bytes: { after: upload.onnx.byteLength },
          active_version: { before: null, after: '1.0.0' },
        },
      })
    },
  )

  it('stores the bytes unchanged and hands them back among the active versions', async () => {
    const upload = shipped('car-price')
    await registry.register(upload)
    const active = (await registry.activeVersions()).find((v) => v.name === upload.card.name)
    expect(active?.version).toBe('1.0.0')
    expect(active?.card).toEqual(upload.card)
    expect(Buffer.from(active?.onnx ?? []).equals(Buffer.from(upload.onnx))).toBe(true)
  })

  it('keeps the active version when a later version is registered', async () => {
    const upload = shipped('iris')
    await registry.register(upload)
    const next = await registry.register({ ...upload, card: { ...upload.card, version: '1.1.0' } })
    expect(next.active_version).toBe('1.0.0')
    expect(next.versions.map((v) => [v.version, v.active])).toEqual([
      ['1.1.0', false],
      ['1.0.0', true],
    ])
  })

  it('rejects an invalid card with 422 VALIDATION_FAILED before loading anything', async () => {
    const upload = shipped('iris')
    const before = sessions.length
    const error = await failure(
      registry.register({ ...upload, card: { ...upload.card, name: 'Not Kebab', version: 'one' } }),
    )
    expect(error).toMatchObject({ code: 'VALIDATION_FAILED', status: 422 })
    expect((error.extensions.errors as { path: string }[]).map((e) => e.path)).toEqual([
      'card.name',
      'card.version',
    ])
    expect(sessions.length).toBe(before)
  })

  it('rejects bytes that are not ONNX with 422 MODEL_INVALID (not_onnx) and stores nothing', async () => {
    const upload = shipped('iris')
    const error = await failure(registry.register({ ...upload, onnx: notOnnxBytes() }))
    expect(error).toMatchObject({
      code: 'MODEL_INVALID',
      status: 422,
      extensions: { reason: 'not_onnx' },
    })
    await expect(registry.get(upload.card.name)).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' })
  })

  it('rejects a broken graph with 422 MODEL_INVALID (invalid_model) and stores nothing', async () => {
    const upload = shipped('iris')
    const error = await failure(registry.register({ ...upload, onnx: brokenGraphModel() }))
    expect(error).toMatchObject({
      code: 'MODEL_INVALID',
      status: 422,
      extensions: { reason: 'invalid_model' },
    })
    expect(error.message).toMatch(/missing/)
    await expect(registry.get(upload.card.name)).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' })
  })

  it('rejects iris bytes under the car-price card with 422 MODEL_SIGNATURE_MISMATCH listing every mismatch', async () => {
    const upload = shipped('car-price')
    const before = sessions.length
    const error = await failure(registry.register({ ...upload, onnx: shippedBytes('iris') }))
    expect(error).toMatchObject({ code: 'MODEL_SIGNATURE_MISMATCH', status: 422 })
    expect((error.extensions.errors as { path: string }[]).map((e) => e.path)).toEqual([
      'card.preprocessing.tensors[0].name',
      'card.preprocessing.tensors[1].name',
      'card.preprocessing.tensors',
      'card.outputs[0].name',
    ])
    expect(sessions.slice(before)).toEqual([{ released: true }])
    await expect(registry.get(upload.card.name)).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' })
    expect(await auditOf(upload.card.name)).toEqual([])
  })

  it('rejects a card with a column too few with 422 naming the column count', async () => {
    const upload = shipped('iris')
    const [tensor] = upload.card.preprocessing.tensors
    const card = {
      ...upload.card,
      // Without its column, petal_width would never reach the graph: the card would contradict itself.
      inputs: upload.card.inputs.slice(0, 3),
      preprocessing: {
        tensors: [{ ...tensor, shape: ['N', 3], columns: tensor?.columns.slice(0, 3) }],
        steps: [],
      },
    }
    const error = await failure(registry.register({ ...upload, card }))
    expect(error.code).toBe('MODEL_SIGNATURE_MISMATCH')
    expect(error.extensions.errors).toEqual([
      {
        path: 'card.preprocessing.tensors[0].columns',
        message: expect.stringMatching(/has 3 columns.*takes 4/),
      },
      { path: 'card.preprocessing.tensors[0].shape[1]', message: expect.stringMatching(/is 3/) },
    ])
    await expect(registry.get(upload.card.name)).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' })
  })

  it('rejects a version that exists with 409 MODEL_VERSION_EXISTS and changes nothing', async () => {
    const upload = shipped('iris')
    const first = await registry.register(upload)
    const other = { ...upload, card: { ...upload.card, description: 'changed' } }
    const error = await failure(registry.register(other))
    expect(error).toMatchObject({ code: 'MODEL_VERSION_EXISTS', status: 409 })
    expect(await registry.get(upload.card.name)).toEqual(first)
    expect(await auditOf(upload.card.name)).toHaveLength(1)
  })

  it('rejects a version whose task differs from the model with 422 on card.task', async () => {
    const upload = shipped('iris')
    await registry.register(upload)
    const irisAsRegression = shipped('car-price', { name: upload.card.name, version: '2.0.0' })
    const error = await failure(registry.register(irisAsRegression))
    expect(error).toMatchObject({
      code: 'VALIDATION_FAILED',
      extensions: { errors: [{ path: 'card.task', message: expect.any(String) }] },
    })
    expect((await registry.get(upload.card.name)).versions).toHaveLength(1)
  })

  it('when the same version is registered twice at once, then one wins and the other gets MODEL_VERSION_EXISTS', async () => {
    const upload = shipped('iris')
    const results = await Promise.allSettled([registry.register(upload), registry.register(upload)])
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected'])
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
    expect(rejected.reason).toMatchObject({ code: 'MODEL_VERSION_EXISTS' })
    expect((await registry.get(upload.card.name)).versions).toHaveLength(1)
  })
})

describe('activate', () => {
  it('makes another version active and audits the switch', async () => {
    const upload = shipped('iris')
    await registry.register(upload)
    await registry.register({ ...upload, card: { ...upload.card, version: '2.0.0' } })

    const model = await registry.activate(upload.card.name, '2.0.0', actor)
    expect(model.active_version).toBe('2.0.0')
    expect(model.card?.version).toBe('2.0.0')
    const active = (await registry.activeVersions()).find((v) => v.name === upload.card.name)
    expect(active?.version).toBe('2.0.0')
    const events = await auditOf(upload.card.name)
    expect(events.at(-1)).toMatchObject({
      action: 'update',
      changes: { active_version: { before: '1.0.0', after: '2.0.0' } },
    })
  })

  it('activating the active version changes nothing and writes no event', async () => {
    const upload = shipped('iris')
    const first = await registry.register(upload)
    expect(await registry.activate(upload.card.name, '1.0.0', actor)).toEqual(first)
    expect(await auditOf(upload.card.name)).toHaveLength(1)
  })

  it('answers 404 for an unknown model or version', async () => {
    const upload = shipped('iris')
    await registry.register(upload)
    await expect(
      registry.activate(`nope-${unique().toLowerCase()}`, '1.0.0', actor),
    ).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND', status: 404 })
    await expect(registry.activate(upload.card.name, '9.9.9', actor)).rejects.toMatchObject({
      code: 'MODEL_VERSION_NOT_FOUND',
      status: 404,
    })
  })
})

describe('remove', () => {
  it('deletes an inactive version and audits it', async () => {
    const upload = shipped('iris')
    await registry.register(upload)
    await registry.register({ ...upload, card: { ...upload.card, version: '1.1.0' } })

    await registry.remove(upload.card.name, '1.1.0', actor)
    const model = await registry.get(upload.card.name)
    expect(model.versions.map((v) => v.version)).toEqual(['1.0.0'])
    expect((await auditOf(upload.card.name)).at(-1)).toMatchObject({
      action: 'delete',
      changes: { version: { before: '1.1.0' } },
    })
  })

  it('refuses to delete the active version with 409 MODEL_VERSION_ACTIVE', async () => {
    const upload = shipped('iris')
    await registry.register(upload)
    await expect(registry.remove(upload.card.name, '1.0.0', actor)).rejects.toMatchObject({
      code: 'MODEL_VERSION_ACTIVE',
      status: 409,
    })
    expect((await registry.get(upload.card.name)).versions).toHaveLength(1)
  })

  it('answers 404 for an unknown model or version', async () => {
    const upload = shipped('iris')
    await registry.register(upload)
    await expect(registry.remove(upload.card.name, '3.0.0', actor)).rejects.toMatchObject({
      code: 'MODEL_VERSION_NOT_FOUND',
    })
    await expect(
      registry.remove(`nope-${unique().toLowerCase()}`, '1.0.0', actor),
    ).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' })
  })

  it('the database refuses to delete an active version even without the service check', async () => {
    const upload = shipped('iris')
    await registry.register(upload)
    const models = createModelRepository(database.db)
    const row = await models.findByName(upload.card.name)
    const error = await inTransaction(database.db)((tx) =>
      models.deleteVersion(row?.id ?? '', '1.0.0', tx),
    ).catch((caught: unknown) => caught)
    expect(isForeignKeyViolation(error, 'models_active_version_fkey')).toBe(true)
    expect((await registry.get(upload.card.name)).versions).toHaveLength(1)
  })
})

describe('list and get', () => {
  it('lists models by name with their active metrics and version count, without the card', async () => {
    const iris = shipped('iris')
    const car = shipped('car-price')
    await registry.register(iris)
    await registry.register({ ...iris, card: { ...iris.card, version: '1.0.1' } })
    await registry.register(car)

    const listed = (await registry.list()).filter((m) =>
      [iris.card.name, car.card.name].includes(m.name),
    )
    expect(listed.map((m) => m.name)).toEqual([car.card.name, iris.card.name])
    expect(listed[1]).toEqual({
      name: iris.card.name,
      task: 'classification',
      active_version: '1.0.0',
      version_count: 2,
      metrics: iris.card.metrics,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    })
  })

  it('get answers 404 MODEL_NOT_FOUND for an unknown model', async () => {
    await expect(registry.get(`nope-${unique().toLowerCase()}`)).rejects.toMatchObject({
      code: 'MODEL_NOT_FOUND',
      status: 404,
    })
  })
})

describe('registerShippedModels', () => {
  let dir: string
  let names: string[]

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'orderflow-shipped-'))
    names = (['iris', 'car-price'] as const).map((model) => {
      const name = `${model}-${unique().toLowerCase()}`
      writeFileSync(join(dir, `${name}.card.json`), JSON.stringify({ ...shippedCard(model), name }))
      copyFileSync(new URL(`${model}.onnx`, MODELS_DIR), join(dir, `${name}.onnx`))
      return name
    })
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('registers each shipped model once, however often it runs', async () => {
    const first = await registry.registerShippedModels(dir)
    expect(first).toEqual({ registered: [...names].sort(), skipped: [] })
    const second = await registry.registerShippedModels(dir)
    expect(second).toEqual({ registered: [], skipped: [...names].sort() })

    for (const name of names) {
      const model = await registry.get(name)
      expect(model.versions).toHaveLength(1)
      expect(model.active_version).toBe('1.0.0')
      expect(model.versions[0]?.created_by).toBeNull()
    }
  })

  it('two starts at once register each model once', async () => {
    const again = mkdtempSync(join(tmpdir(), 'orderflow-shipped-'))
    try {
      const name = `iris-${unique().toLowerCase()}`
      writeFileSync(
        join(again, `${name}.card.json`),
        JSON.stringify({ ...shippedCard('iris'), name }),
      )
      copyFileSync(new URL('iris.onnx', MODELS_DIR), join(again, `${name}.onnx`))
      const results = await Promise.all([
        registry.registerShippedModels(again),
        registry.registerShippedModels(again),
      ])
      expect(results.flatMap((r) => r.registered)).toEqual([name])
      expect((await registry.get(name)).versions).toHaveLength(1)
    } finally {
      rmSync(again, { recursive: true, force: true })
    }
  })
})
