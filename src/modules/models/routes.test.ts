import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import {
  formBody,
  type ModelUploadParts,
  modelUpload,
  registerVersion,
  shippedBytes,
  shippedCard,
} from '../../../test/models.js'
import type { ModelCard } from './card.js'
import { ModelLoadError } from './runtime/backend.js'
import { notOnnxBytes } from './runtime/test-models.js'

const irisCard = shippedCard('iris')
const irisBytes = shippedBytes('iris')
const carPriceCard = shippedCard('car-price')

/** The iris card under a name of its own, so test files and reruns never collide. */
const irisUnder = (overrides: Partial<ModelCard> = {}): ModelCard => ({
  ...irisCard,
  name: `iris-${unique().toLowerCase()}`,
  ...overrides,
})

let t: TestApp
let admin: TestUser
let user: TestUser
let viewer: TestUser

beforeAll(async () => {
  t = await buildTestApp({}, { privateDatabase: true })
  admin = await createTestUser(t, 'admin')
  user = await createTestUser(t, 'user')
  viewer = await createTestUser(t, 'viewer')
})
afterAll(() => t.close())

async function upload(parts: ModelUploadParts, as: TestUser = admin) {
  return injectAs(t, as)({ method: 'POST', url: '/v1/models', ...(await modelUpload(parts)) })
}

async function registered(overrides: Partial<ModelCard> = {}) {
  const card = irisUnder(overrides)
  await registerVersion(t, admin, card, irisBytes)
  return card
}

describe('POST /v1/models', () => {
  it('when an admin uploads the iris card and graph, then 201 with its Location, first version active', async () => {
    const card = irisUnder()
    const response = await upload({ card, onnx: irisBytes })
    expect(response.statusCode, response.body).toBe(201)
    expect(response.headers.location).toBe(`/v1/models/${card.name}`)
    const model = response.json()
    expect(model).toMatchObject({
      name: card.name,
      task: 'classification',
      active_version: '1.0.0',
      metrics: irisCard.metrics,
    })
    expect(model.card).toEqual(card)
    expect(model.versions).toHaveLength(1)
    expect(model.versions[0]).toMatchObject({
      version: '1.0.0',
      active: true,
      size_bytes: irisBytes.byteLength,
      created_by: admin.id,
    })
  })

  it('when the card comes as a file part, then it is read the same way', async () => {
    const card = irisUnder()
    const response = await upload({ card, cardAsFile: true, onnx: irisBytes })
    expect(response.statusCode, response.body).toBe(201)
    expect(response.json().name).toBe(card.name)
  })

  it('when the version already exists, then 409 MODEL_VERSION_EXISTS', async () => {
    const card = await registered()
    const response = await upload({ card, onnx: irisBytes })
    expect(response.statusCode).toBe(409)
    expect(response.json().code).toBe('MODEL_VERSION_EXISTS')
  })

  it('when the file is not ONNX, then 422 MODEL_INVALID and nothing is stored', async () => {
    const card = irisUnder()
    const response = await upload({ card, onnx: notOnnxBytes() })
    expect(response.statusCode).toBe(422)
    expect(response.json()).toMatchObject({ code: 'MODEL_INVALID', reason: 'not_onnx' })
    expect((await t.app.inject({ url: `/v1/models/${card.name}`, ...admin })).statusCode).toBe(404)
  })

  it('when the card does not describe the graph, then 422 MODEL_SIGNATURE_MISMATCH with errors', async () => {
    const card = { ...carPriceCard, name: `car-${unique().toLowerCase()}` }
    const response = await upload({ card, onnx: irisBytes })
    expect(response.statusCode).toBe(422)
    const problem = response.json()
    expect(problem.code).toBe('MODEL_SIGNATURE_MISMATCH')
    expect(problem.errors.length).toBeGreaterThan(0)
  })

  it('when the card contradicts itself, then 422 VALIDATION_FAILED naming every problem by path, and nothing is stored', async () => {
    const card = structuredClone({ ...carPriceCard, name: `car-${unique().toLowerCase()}` })
    const [impute, , standardize] = card.preprocessing.steps as [
      { values: number[] },
      unknown,
      { mean: number[]; scale: number[]; columns: string[] },
    ]
    standardize.mean.pop()
    standardize.scale[2] = 0
    standardize.columns[7] = 'door_count'
    impute.values.pop()
    Object.assign(card.inputs[1] as object, { minimum: 10, maximum: 1 })
    ;(card.inputs[4] as { default: number }).default = 200
    const response = await upload({ card, onnx: shippedBytes('car-price') })
    expect(response.statusCode, response.body).toBe(422)
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
    const problem = response.json()
    expect(problem.code).toBe('VALIDATION_FAILED')
    expect(problem.errors.map((error: { path: string }) => error.path)).toEqual([
      'card.inputs[1].minimum',
      'card.preprocessing.steps[0].values',
      'card.preprocessing.steps[2].columns[7]',
      'card.preprocessing.steps[2].mean',
      'card.preprocessing.steps[2].scale[2]',
      'card.inputs[4].default',
    ])
    const lookup = await injectAs(t, admin)({ url: `/v1/models/${card.name}` })
    expect(lookup.statusCode).toBe(404)
  })

  it('when the card breaks its schema, then 422 VALIDATION_FAILED naming the field', async () => {
    const response = await upload({ card: irisUnder({ version: 'one' }), onnx: irisBytes })
    expect(response.statusCode).toBe(422)
    const problem = response.json()
    expect(problem.code).toBe('VALIDATION_FAILED')
    expect(problem.errors.map((e: { path: string }) => e.path).join(' ')).toContain('version')
  })

  it('when the card is not JSON, then 422 VALIDATION_FAILED on card', async () => {
    const form = new FormData()
    form.append('card', '{not json')
    form.append('onnx', new Blob([irisBytes]), 'iris.onnx')
    const response = await injectAs(
      t,
      admin,
    )({ method: 'POST', url: '/v1/models', ...(await formBody(form)) })
    expect(response.statusCode).toBe(422)
    expect(response.json().errors).toEqual([{ path: 'card', message: 'must be JSON' }])
  })

  it.each([
    ['onnx', { card: irisCard }],
    ['card', { onnx: irisBytes }],
  ] as const)('when the %s part is missing, then 422 naming it', async (part, parts) => {
    const response = await upload(parts)
    expect(response.statusCode).toBe(422)
    expect(response.json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      errors: [{ path: part, message: 'is required' }],
    })
  })

  it('when the body is JSON rather than multipart, then 415', async () => {
    const response = await injectAs(
      t,
      admin,
    )({
      method: 'POST',
      url: '/v1/models',
      payload: { card: irisCard },
    })
    expect(response.statusCode).toBe(415)
    expect(response.json().code).toBe('UNSUPPORTED_MEDIA_TYPE')
  })

  it.each([
    ['no body and no Content-Type', {}],
    ['a body and no Content-Type', { payload: 'card=x', headers: { 'content-type': undefined } }],
    ['text/plain', { payload: 'card=x', headers: { 'content-type': 'text/plain' } }],
  ] as const)(
    'when the request has %s, then 415 naming multipart/form-data',
    async (_, request) => {
      const response = await injectAs(t, admin)({ method: 'POST', url: '/v1/models', ...request })
      expect(response.statusCode, response.body).toBe(415)
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(response.json().code).toBe('UNSUPPORTED_MEDIA_TYPE')
      expect(response.json().detail).toContain('multipart/form-data')
    },
  )

  it('when the graph is larger than MODEL_MAX_BYTES, then 413 before the graph is read, and nothing is stored', async () => {
    const small = await buildTestApp({ MODEL_MAX_BYTES: '1024' }, { privateDatabase: true })
    try {
      const smallAdmin = await createTestUser(small, 'admin')
      const card = irisUnder()
      const response = await injectAs(
        small,
        smallAdmin,
      )({
        method: 'POST',
        url: '/v1/models',
        ...(await modelUpload({ card, onnx: notOnnxBytes(1025) })),
      })
      expect(response.statusCode).toBe(413)
      expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
      expect(response.json().code).toBe('PAYLOAD_TOO_LARGE')
      const lookup = await injectAs(small, smallAdmin)({ url: `/v1/models/${card.name}` })
      expect(lookup.statusCode).toBe(404)
    } finally {
      await small.close()
    }
  })

  it.each(['user', 'viewer'] as const)(
    'when a %s uploads, then 403 and nothing is stored',
    async (role) => {
      const card = irisUnder()
      const response = await upload({ card, onnx: irisBytes }, role === 'user' ? user : viewer)
      expect(response.statusCode).toBe(403)
      const lookup = await injectAs(t, admin)({ url: `/v1/models/${card.name}` })
      expect(lookup.statusCode).toBe(404)
    },
  )

  it('keeps other routes JSON only: multipart to POST /v1/products answers 415', async () => {
    const response = await injectAs(
      t,
      admin,
    )({
      method: 'POST',
      url: '/v1/products',
      ...(await modelUpload({ card: { name: 'x' } })),
    })
    expect(response.statusCode).toBe(415)
  })
})

describe('reading models', () => {
  it.each(['admin', 'user', 'viewer'] as const)(
    'when a %s lists and gets models, then it sees versions, the active one and metrics',
    async (role) => {
      const card = await registered()
      const caller = { admin, user, viewer }[role]
      const list = await injectAs(t, caller)({ url: '/v1/models' })
      expect(list.statusCode).toBe(200)
      expect(list.json()).toContainEqual(
        expect.objectContaining({
          name: card.name,
          active_version: '1.0.0',
          version_count: 1,
          metrics: irisCard.metrics,
        }),
      )
      const detail = await injectAs(t, caller)({ url: `/v1/models/${card.name}` })
      expect(detail.statusCode).toBe(200)
      expect(detail.json()).toMatchObject({ name: card.name, card: { version: '1.0.0' } })
    },
  )

  it('when the model does not exist, then 404 MODEL_NOT_FOUND', async () => {
    const response = await injectAs(t, viewer)({ url: '/v1/models/no-such-model' })
    expect(response.statusCode).toBe(404)
    expect(response.json().code).toBe('MODEL_NOT_FOUND')
  })
})

describe('activating and deleting versions', () => {
  it('when an admin activates a second version, then it serves, and the first can be deleted', async () => {
    const card = await registered()
    const second = await upload({ card: { ...card, version: '1.1.0' }, onnx: irisBytes })
    expect(second.statusCode).toBe(201)
    expect(second.json().active_version).toBe('1.0.0')

    const activated = await injectAs(
      t,
      admin,
    )({
      method: 'POST',
      url: `/v1/models/${card.name}/versions/1.1.0/activate`,
    })
    expect(activated.statusCode).toBe(200)
    expect(activated.json()).toMatchObject({ active_version: '1.1.0', card: { version: '1.1.0' } })

    const removed = await injectAs(
      t,
      admin,
    )({
      method: 'DELETE',
      url: `/v1/models/${card.name}/versions/1.0.0`,
    })
    expect(removed.statusCode).toBe(204)
    const detail = (await injectAs(t, admin)({ url: `/v1/models/${card.name}` })).json()
    expect(detail.versions.map((v: { version: string }) => v.version)).toEqual(['1.1.0'])
  })

  it('when an admin deletes the active version, then 409 MODEL_VERSION_ACTIVE and it stays', async () => {
    const card = await registered()
    const response = await injectAs(
      t,
      admin,
    )({
      method: 'DELETE',
      url: `/v1/models/${card.name}/versions/1.0.0`,
    })
    expect(response.statusCode).toBe(409)
    expect(response.json().code).toBe('MODEL_VERSION_ACTIVE')
    const detail = (await injectAs(t, admin)({ url: `/v1/models/${card.name}` })).json()
    expect(detail.active_version).toBe('1.0.0')
  })

  it('when the version does not exist, then 404 MODEL_VERSION_NOT_FOUND on both', async () => {
    const card = await registered()
    for (const [method, url] of [
      ['POST', `/v1/models/${card.name}/versions/9.9.9/activate`],
      ['DELETE', `/v1/models/${card.name}/versions/9.9.9`],
    ] as const) {
      const response = await injectAs(t, admin)({ method, url })
      expect(response.statusCode, `${method} ${url}`).toBe(404)
      expect(response.json().code).toBe('MODEL_VERSION_NOT_FOUND')
    }
  })

  it.each(['user', 'viewer'] as const)(
    'when a %s activates or deletes, then 403 and nothing changes',
    async (role) => {
      const card = await registered()
      await upload({ card: { ...card, version: '1.1.0' }, onnx: irisBytes })
      const caller = role === 'user' ? user : viewer
      for (const [method, url] of [
        ['POST', `/v1/models/${card.name}/versions/1.1.0/activate`],
        ['DELETE', `/v1/models/${card.name}/versions/1.1.0`],
      ] as const) {
        const response = await injectAs(t, caller)({ method, url })
        expect(response.statusCode, `${method} ${url}`).toBe(403)
      }
      const detail = (await injectAs(t, admin)({ url: `/v1/models/${card.name}` })).json()
      expect(detail.active_version).toBe('1.0.0')
      expect(detail.versions).toHaveLength(2)
    },
  )
})

describe('audit', () => {
  it('records the registration, the activation and the deletion, by the admin who made them', async () => {
    const card = await registered()
    await upload({ card: { ...card, version: '1.1.0' }, onnx: irisBytes })
    const as = injectAs(t, admin)
    await as({ method: 'POST', url: `/v1/models/${card.name}/versions/1.1.0/activate` })
    await as({ method: 'DELETE', url: `/v1/models/${card.name}/versions/1.0.0` })
    const events = await as({
      url: `/v1/audit-events?resource_type=model&resource_id=${card.name}&page_size=100`,
    })
    expect(events.statusCode).toBe(200)
    const items = events.json().items as { action: string; actor: { user_id: string } }[]
    expect(items.map((event) => event.action).sort()).toEqual([
      'create',
      'create',
      'delete',
      'update',
    ])
    expect(items.every((event) => event.actor.user_id === admin.id)).toBe(true)
  })
})

describe('the inference backend', () => {
  it('when buildApp is handed a backend, then registration loads graphs with it', async () => {
    const loads: number[] = []
    const refusing = await buildTestApp(
      {},
      {
        inference: {
          name: 'refusing',
          async load(bytes) {
            loads.push(bytes.byteLength)
            throw new ModelLoadError('unsupported', 'This backend loads nothing.')
          },
        },
        privateDatabase: true,
      },
    )
    try {
      const refusingAdmin = await createTestUser(refusing, 'admin')
      const response = await injectAs(
        refusing,
        refusingAdmin,
      )({
        method: 'POST',
        url: '/v1/models',
        ...(await modelUpload({ card: irisUnder(), onnx: irisBytes })),
      })
      expect(response.statusCode).toBe(422)
      expect(response.json()).toMatchObject({ code: 'MODEL_INVALID', reason: 'unsupported' })
      expect(loads).toEqual([irisBytes.byteLength])
    } finally {
      await refusing.close()
    }
  })
})

describe('shipped models at start', () => {
  it('when MODELS_REGISTER_SHIPPED is true, then iris and car-price are listed', async () => {
    const shipped = await buildTestApp(
      { MODELS_REGISTER_SHIPPED: 'true' },
      { privateDatabase: true },
    )
    try {
      const reader = await createTestUser(shipped, 'viewer')
      const response = await injectAs(shipped, reader)({ url: '/v1/models' })
      expect(response.statusCode).toBe(200)
      const names = (response.json() as { name: string }[]).map((model) => model.name)
      expect(names).toEqual(expect.arrayContaining(['car-price', 'iris']))
    } finally {
      await shipped.close()
    }
  })
})
