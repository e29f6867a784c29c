import { randomUUID } from 'node:crypto'
import { and, eq, sql } from 'drizzle-orm'
import Fastify, {
  type FastifyInstance,
  type FastifyRequest,
  type RouteHandlerMethod,
} from 'fastify'
import fp from 'fastify-plugin'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { insertProduct, stockOf } from '../../test/catalog.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../test/helpers.js'
import type { Transaction } from '../db/client.js'
import { auditEvents, idempotencyKeys, orders, products } from '../db/schema/index.js'
import { idempotency, idempotentCommit } from './idempotency.js'
import { problemHandler } from './problem.js'
import { validatorCompiler } from './validation.js'

let t: TestApp
let admin: TestUser
let asAdmin: ReturnType<typeof injectAs>

beforeAll(async () => {
  t = await buildTestApp()
  admin = await createTestUser(t, 'admin')
  asAdmin = injectAs(t, admin)
})
afterAll(() => t.close())

const newKey = () => `key-${randomUUID()}`

function newProduct(overrides: Record<string, unknown> = {}) {
  return {
    sku: `IDEM-${unique()}`,
    name: 'Espresso machine',
    price: '349.00',
    stock: 4,
    ...overrides,
  }
}

function postProduct(
  key: string | null,
  payload: object,
  as: ReturnType<typeof injectAs> = asAdmin,
) {
  return as({
    method: 'POST',
    url: '/v1/products',
    payload,
    headers: key === null ? {} : { 'idempotency-key': key },
  })
}

async function productsWithSku(sku: string) {
  return t.database.db.select().from(products).where(eq(products.sku, sku))
}

async function productAuditEvents(sku: string) {
  return t.database.db
    .select()
    .from(auditEvents)
    .where(
      and(
        eq(auditEvents.resourceType, 'product'),
        sql`${auditEvents.changes}->'sku'->>'after' = ${sku}`,
      ),
    )
}

async function recordOf(scope: string, key: string) {
  const [row] = await t.database.db
    .select()
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)))
  return row
}

const adminScope = () => `user:${admin.id}`

/** Changes a record the way a crash or an outage would have left it. */
async function setRecord(
  scope: string,
  key: string,
  values: Partial<typeof idempotencyKeys.$inferInsert>,
) {
  await t.database.db
    .update(idempotencyKeys)
    .set(values)
    .where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)))
}

/** What a request leaves when its answer is lost after it claimed the key. */
const answerLost = {
  statusCode: null,
  responseHeaders: null,
  responseBody: null,
  completedAt: null,
}
const leaseOver = () => ({ leaseExpiresAt: new Date(Date.now() - 1000) })

describe('POST /v1/products with an Idempotency-Key', () => {
  it('when a request is retried with the same key and body, then the stored answer is replayed byte for byte and the product is created once', async () => {
    const key = newKey()
    const payload = newProduct()
    const first = await postProduct(key, payload)
    const retry = await postProduct(key, payload)

    expect(first.statusCode).toBe(201)
    expect(first.headers['idempotent-replayed']).toBeUndefined()
    expect(retry.statusCode).toBe(201)
    expect(retry.headers['idempotent-replayed']).toBe('true')
    expect(retry.rawPayload.equals(first.rawPayload)).toBe(true)
    expect(retry.headers['content-type']).toBe(first.headers['content-type'])
    expect(retry.headers.location).toBe(first.headers.location)
    expect(retry.headers['x-request-id']).not.toBe(first.headers['x-request-id'])
    expect(await productsWithSku(payload.sku)).toHaveLength(1)
    expect(await productAuditEvents(payload.sku)).toHaveLength(1)
    expect(await recordOf(adminScope(), key)).toMatchObject({
      method: 'POST',
      path: '/v1/products',
      statusCode: 201,
      responseBody: first.body,
      responseHeaders: {
        'content-type': first.headers['content-type'],
        location: first.headers.location,
      },
      committedAt: expect.any(Date),
      resourceLocation: first.headers.location,
    })
  })

  it('when the same key comes with the same fields in another order, then it is the same request', async () => {
    const key = newKey()
    const payload = newProduct()
    const { stock, price, name, sku } = payload
    expect((await postProduct(key, payload)).statusCode).toBe(201)
    const reordered = await postProduct(key, { stock, price, name, sku })
    expect(reordered.headers['idempotent-replayed']).toBe('true')
  })

  it('when the same key comes with another body, then answers 422 IDEMPOTENCY_KEY_REUSED and creates nothing', async () => {
    const key = newKey()
    const original = newProduct()
    expect((await postProduct(key, original)).statusCode).toBe(201)
    const other = newProduct()
    const response = await postProduct(key, other)

    expect(response.statusCode).toBe(422)
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
    expect(response.json()).toMatchObject({ status: 422, code: 'IDEMPOTENCY_KEY_REUSED' })
    expect(response.json().detail).toContain('with another body')
    expect(await productsWithSku(other.sku)).toHaveLength(0)
    expect(await recordOf(adminScope(), key)).toMatchObject({ statusCode: 201 })
  })

  it('when 20 requests with one key arrive together, then exactly one runs and the others wait or replay', async () => {
    const key = newKey()
    const payload = newProduct()
    const answers = await Promise.all(Array.from({ length: 20 }, () => postProduct(key, payload)))

    const executed = answers.filter(
      (a) => a.statusCode === 201 && a.headers['idempotent-replayed'] === undefined,
    )
    expect(executed).toHaveLength(1)
    for (const answer of answers) {
      if (answer.statusCode === 201) {
        expect(answer.rawPayload.equals(executed[0]?.rawPayload as Buffer)).toBe(true)
      } else {
        expect(answer.statusCode).toBe(409)
        expect(answer.json().code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS')
        expect(answer.headers['retry-after']).toBe('1')
      }
    }
    expect(await productsWithSku(payload.sku)).toHaveLength(1)
    expect(await productAuditEvents(payload.sku)).toHaveLength(1)
  })

  it('when the first request died between its commit and storing its answer, then a retry answers 409 in progress within the lease, then 409 IDEMPOTENCY_ANSWER_LOST with the Location, and runs nothing', async () => {
    const key = newKey()
    const payload = newProduct()
    const first = await postProduct(key, payload)
    expect(first.statusCode).toBe(201)
    await setRecord(adminScope(), key, answerLost)

    const within = await postProduct(key, payload)
    expect(within.statusCode).toBe(409)
    expect(within.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_IN_PROGRESS' })
    expect(within.headers['retry-after']).toBe('1')

    await setRecord(adminScope(), key, leaseOver())
    const retry = await postProduct(key, payload)
    expect(retry.statusCode).toBe(409)
    expect(retry.json()).toMatchObject({ code: 'IDEMPOTENCY_ANSWER_LOST' })
    expect(retry.headers.location).toBe(first.headers.location)
    expect(await productAuditEvents(payload.sku)).toHaveLength(1)
  })

  it('when the body fails validation, then nothing is stored and a valid request with the key runs', async () => {
    const key = newKey()
    const invalid = await postProduct(key, newProduct({ price: 'free' }))
    expect(invalid.statusCode).toBe(422)
    expect(invalid.json().code).toBe('VALIDATION_FAILED')
    expect(await recordOf(adminScope(), key)).toBeUndefined()

    const payload = newProduct()
    const valid = await postProduct(key, payload)
    expect(valid.statusCode).toBe(201)
    expect(valid.headers['idempotent-replayed']).toBeUndefined()
    expect(await productsWithSku(payload.sku)).toHaveLength(1)
  })

  it('when two callers use the same key, then they are two keys and both requests run', async () => {
    const key = newKey()
    const other = injectAs(t, await createTestUser(t, 'admin'))
    const [first, second] = [newProduct(), newProduct()]

    expect((await postProduct(key, first)).statusCode).toBe(201)
    const response = await postProduct(key, second, other)
    expect(response.statusCode).toBe(201)
    expect(response.headers['idempotent-replayed']).toBeUndefined()
    expect(await productsWithSku(first.sku)).toHaveLength(1)
    expect(await productsWithSku(second.sku)).toHaveLength(1)
  })

  it('when a user sends a key through an API key and as a bearer, then each credential has its own keys', async () => {
    const created = await asAdmin({
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: `idempotency ${unique()}` },
    })
    expect(created.statusCode).toBe(201)
    const { id, key: apiKey } = created.json()
    const key = newKey()
    const viaApiKey = (options: object) =>
      t.app.inject({ ...options, headers: { 'x-api-key': apiKey, 'idempotency-key': key } })
    const [first, second] = [newProduct(), newProduct()]

    expect((await postProduct(key, first)).statusCode).toBe(201)
    const response = await viaApiKey({ method: 'POST', url: '/v1/products', payload: second })
    expect(response.statusCode).toBe(201)
    expect(await recordOf(`key:${id}`, key)).toMatchObject({ statusCode: 201 })
    expect(await productsWithSku(second.sku)).toHaveLength(1)
  })

  it('when the stored record has expired, then the key is taken over and the request runs again', async () => {
    const key = newKey()
    expect((await postProduct(key, newProduct())).statusCode).toBe(201)
    await t.database.db
      .update(idempotencyKeys)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(and(eq(idempotencyKeys.scope, adminScope()), eq(idempotencyKeys.key, key)))

    const payload = newProduct()
    const response = await postProduct(key, payload)
    expect(response.statusCode).toBe(201)
    expect(response.headers['idempotent-replayed']).toBeUndefined()
    expect(await productsWithSku(payload.sku)).toHaveLength(1)
    const record = await recordOf(adminScope(), key)
    expect(record?.responseBody).toBe(response.body)
    expect(record?.expiresAt.getTime()).toBeGreaterThan(Date.now() + 23 * 3600 * 1000)
  })

  it('when the first answer was a 409 PRODUCT_SKU_TAKEN, then a retry replays it even after the conflict is gone', async () => {
    const existing = await postProduct(null, newProduct())
    const { id, sku } = existing.json()
    const key = newKey()
    const payload = newProduct({ sku })
    const conflict = await postProduct(key, payload)
    expect(conflict.statusCode).toBe(409)
    expect(conflict.json().code).toBe('PRODUCT_SKU_TAKEN')
    expect((await asAdmin({ method: 'DELETE', url: `/v1/products/${id}` })).statusCode).toBe(204)

    const retry = await postProduct(key, payload)
    expect(retry.statusCode).toBe(409)
    expect(retry.headers['idempotent-replayed']).toBe('true')
    expect(retry.headers['content-type']).toBe('application/problem+json; charset=utf-8')
    expect(retry.rawPayload.equals(conflict.rawPayload)).toBe(true)
    expect(await productsWithSku(sku)).toHaveLength(0)
  })

  it.each([
    ['empty', ''],
    ['longer than 255 characters', 'k'.repeat(256)],
    ['not printable ASCII', 'clé-1'],
    ['a control character', 'a\tb'],
  ])(
    'when the key is %s, then answers 422 naming the header and stores nothing',
    async (_case, key) => {
      const payload = newProduct()
      const response = await postProduct(key, payload)
      expect(response.statusCode).toBe(422)
      expect(response.json().errors.map((e: { path: string }) => e.path)).toEqual([
        'headers.idempotency-key',
      ])
      expect(await recordOf(adminScope(), key)).toBeUndefined()
      expect(await productsWithSku(payload.sku)).toHaveLength(0)
    },
  )

  it('accepts a key of exactly 255 printable characters', async () => {
    const key = `${randomUUID()} ~!`.padEnd(255, 'x')
    expect((await postProduct(key, newProduct())).statusCode).toBe(201)
    expect(await recordOf(adminScope(), key)).toMatchObject({ statusCode: 201 })
  })

  it('when no key is sent, then every request runs and nothing is stored', async () => {
    const payload = newProduct()
    expect((await postProduct(null, payload)).statusCode).toBe(201)
    expect((await postProduct(null, payload)).json().code).toBe('PRODUCT_SKU_TAKEN')
  })

  it('declares the header, the 409 and 422 answers and the replay marker in the OpenAPI document', async () => {
    const document = (await t.app.inject({ url: '/openapi.json' })).json()
    const create = document.paths['/v1/products'].post
    expect(create.parameters).toContainEqual(
      expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false }),
    )
    expect(create.responses['201'].headers['Idempotent-Replayed']).toBeDefined()
    expect(create.responses['409'].description).toContain('IDEMPOTENCY_KEY_IN_PROGRESS')
    expect(create.responses['422'].description).toContain('IDEMPOTENCY_KEY_REUSED')
    const list = document.paths['/v1/products'].get
    expect(JSON.stringify(list.parameters ?? [])).not.toContain('idempotency-key')
  })
})

describe('POST /v1/orders and /v1/customers after a crash or an outage', () => {
  let customerId: string

  beforeAll(async () => {
    const key = newKey()
    const created = await asAdmin({
      method: 'POST',
      url: '/v1/customers',
      payload: { name: 'Idempotent Buyer', email: `buyer-${unique().toLowerCase()}@example.com` },
      headers: { 'idempotency-key': key },
    })
    expect(created.statusCode).toBe(201)
    customerId = created.json().id
    // The customer route marks its commit too.
    expect(await recordOf(adminScope(), key)).toMatchObject({
      committedAt: expect.any(Date),
      resourceLocation: created.headers.location,
    })
  })

  function placeOrder(key: string, productId: string, notes = `order ${key}`) {
    return asAdmin({
      method: 'POST',
      url: '/v1/orders',
      payload: { customer_id: customerId, items: [{ product_id: productId, quantity: 2 }], notes },
      headers: { 'idempotency-key': key },
    })
  }

  async function ordersNoted(notes: string) {
    return t.database.db.select().from(orders).where(eq(orders.notes, notes))
  }

  it("when an order committed but its answer was lost, then a retry after the lease answers 409 IDEMPOTENCY_ANSWER_LOST with the order's Location and never places a second order", async () => {
    const product = await insertProduct(t, { stock: 10 })
    const key = newKey()
    const first = await placeOrder(key, product.id)
    expect(first.statusCode).toBe(201)
    await setRecord(adminScope(), key, { ...answerLost, ...leaseOver() })

    const retry = await placeOrder(key, product.id)
    expect(retry.statusCode).toBe(409)
    expect(retry.headers['content-type']).toBe('application/problem+json; charset=utf-8')
    expect(retry.json()).toMatchObject({ code: 'IDEMPOTENCY_ANSWER_LOST' })
    expect(retry.headers.location).toBe(`/v1/orders/${first.json().id}`)
    expect(await ordersNoted(`order ${key}`)).toHaveLength(1)
    expect(await stockOf(t, product.id)).toBe(8)
    const read = await asAdmin({ url: retry.headers.location as string })
    expect(read.json()).toMatchObject({ id: first.json().id, total: first.json().total })
  })

  it('when an order rolled back and its claim was left behind, then a retry within the lease answers 409 IN_PROGRESS and one after the lease places the order once', async () => {
    const product = await insertProduct(t, { stock: 1 })
    const key = newKey()
    // Out of stock: the transaction rolls back. Clearing the stored answer leaves the claim
    // as an outage would (the answer or the release never reached the database).
    const refused = await placeOrder(key, product.id)
    expect(refused.json().code).toBe('OUT_OF_STOCK')
    await setRecord(adminScope(), key, answerLost)
    expect(await recordOf(adminScope(), key)).toMatchObject({ committedAt: null })
    await t.database.db.update(products).set({ stock: 5 }).where(eq(products.id, product.id))

    const within = await placeOrder(key, product.id)
    expect(within.statusCode).toBe(409)
    expect(within.json().code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS')
    expect(within.headers['retry-after']).toBe('1')
    expect(await ordersNoted(`order ${key}`)).toHaveLength(0)

    await setRecord(adminScope(), key, leaseOver())
    const after = await placeOrder(key, product.id)
    expect(after.statusCode).toBe(201)
    expect(after.headers['idempotent-replayed']).toBeUndefined()
    const replay = await placeOrder(key, product.id)
    expect(replay.headers['idempotent-replayed']).toBe('true')
    expect(await ordersNoted(`order ${key}`)).toHaveLength(1)
    expect(await stockOf(t, product.id)).toBe(3)
    expect(await recordOf(adminScope(), key)).toMatchObject({
      statusCode: 201,
      resourceLocation: after.headers.location,
    })
  })

  it("when a claim's lease ran out, then a retry with another body still answers 422 IDEMPOTENCY_KEY_REUSED", async () => {
    const product = await insertProduct(t, { stock: 0 })
    const key = newKey()
    expect((await placeOrder(key, product.id)).json().code).toBe('OUT_OF_STOCK')
    await setRecord(adminScope(), key, { ...answerLost, ...leaseOver() })

    const other = await placeOrder(key, product.id, 'another body')
    expect(other.statusCode).toBe(422)
    expect(other.json().code).toBe('IDEMPOTENCY_KEY_REUSED')
  })
})

/** Stands in for platform/auth: the X-API-Key value is the caller's user id. */
const fakeAuth = fp(
  async (app: FastifyInstance) => {
    app.decorateRequest('caller', null)
    app.addHook('onRequest', async (request) => {
      const userId = request.headers['x-api-key']
      if (typeof userId === 'string') request.caller = { userId, role: 'admin', apiKeyId: null }
    })
  },
  { name: 'auth' },
)

/**
 * A small app around the guard, on the test database, for what the product routes cannot
 * show: a handler held mid-flight, a 5xx, two guarded paths.
 */
async function buildGuardedApp(
  handler: RouteHandlerMethod,
  options: { cleanupIntervalMs?: number; leaseMs?: number } = {},
): Promise<FastifyInstance> {
  const app = Fastify()
  app.setValidatorCompiler(validatorCompiler)
  await app.register(problemHandler)
  await app.register(fakeAuth)
  await app.register(idempotency, {
    db: t.database.db,
    ttlSeconds: 3600,
    leaseMs: 60_000,
    ...options,
  })
  const route = {
    config: { idempotent: true },
    schema: {
      body: {
        type: 'object',
        properties: { n: { type: 'integer' } },
        required: ['n'],
        additionalProperties: false,
      },
    },
  }
  app.post('/v1/jobs', route, handler)
  app.post('/v1/other-jobs', route, handler)
  await app.ready()
  return app
}

function caller() {
  const userId = randomUUID()
  return {
    scope: `user:${userId}`,
    post: (app: FastifyInstance, key: string, body: object = { n: 1 }, url = '/v1/jobs') =>
      app.inject({
        method: 'POST',
        url,
        payload: body,
        headers: { 'x-api-key': userId, 'idempotency-key': key },
      }),
  }
}

/**
 * A guarded job's work: one audit row named after the job, committed with the key's mark,
 * as a service does with the hook its route hands it.
 */
async function doJob(request: FastifyRequest, job: string) {
  const hook = idempotentCommit(request, ({ id }: { id: string }) => `/v1/jobs/${id}`)
  await t.database.db.transaction(async (tx: Transaction) => {
    await tx
      .insert(auditEvents)
      .values({ action: 'create', resourceType: 'job', resourceId: job, changes: {} })
    await hook?.(tx, { id: job })
  })
}

async function jobsDone(job: string) {
  return t.database.db.select().from(auditEvents).where(eq(auditEvents.resourceId, job))
}

describe('the idempotency guard on any route', () => {
  it('when a retry arrives while the first request runs, then answers 409 with Retry-After, and replays once it is done', async () => {
    let release = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    let runs = 0
    const app = await buildGuardedApp(async (_request, reply) => {
      runs++
      await gate
      return reply.code(201).send({ run: runs })
    })
    const { scope, post } = caller()
    const key = newKey()

    const first = post(app, key)
    await vi.waitFor(async () => expect(await recordOf(scope, key)).toBeDefined())
    const during = await post(app, key)
    expect(during.statusCode).toBe(409)
    expect(during.json()).toMatchObject({ status: 409, code: 'IDEMPOTENCY_KEY_IN_PROGRESS' })
    expect(during.headers['retry-after']).toBe('1')

    release()
    expect((await first).statusCode).toBe(201)
    const after = await post(app, key)
    expect(after.statusCode).toBe(201)
    expect(after.headers['idempotent-replayed']).toBe('true')
    expect(after.json()).toEqual({ run: 1 })
    expect(runs).toBe(1)
    await app.close()
  })

  it('when the first request fails with a 5xx, then nothing is stored and a retry runs again', async () => {
    let runs = 0
    const app = await buildGuardedApp(async (_request, reply) => {
      runs++
      if (runs === 1) throw new Error('database went away')
      return reply.code(201).send({ run: runs })
    })
    const { scope, post } = caller()
    const key = newKey()

    const failed = await post(app, key)
    expect(failed.statusCode).toBe(500)
    expect(await recordOf(scope, key)).toBeUndefined()

    const retry = await post(app, key)
    expect(retry.statusCode).toBe(201)
    expect(retry.headers['idempotent-replayed']).toBeUndefined()
    expect(retry.json()).toEqual({ run: 2 })
    expect(await recordOf(scope, key)).toMatchObject({ statusCode: 201 })
    await app.close()
  })

  it('when a key is reused on another path, then answers 422 IDEMPOTENCY_KEY_REUSED and runs nothing', async () => {
    let runs = 0
    const app = await buildGuardedApp(async (_request, reply) =>
      reply.code(201).send({ run: ++runs }),
    )
    const { post } = caller()
    const key = newKey()

    expect((await post(app, key, { n: 1 }, '/v1/jobs')).statusCode).toBe(201)
    const elsewhere = await post(app, key, { n: 1 }, '/v1/other-jobs')
    expect(elsewhere.statusCode).toBe(422)
    expect(elsewhere.json()).toMatchObject({
      code: 'IDEMPOTENCY_KEY_REUSED',
      detail: expect.stringContaining('for POST /v1/jobs'),
    })
    const withQuery = await post(app, key, { n: 1 }, '/v1/jobs?dry_run=true')
    expect(withQuery.json().code).toBe('IDEMPOTENCY_KEY_REUSED')
    expect(runs).toBe(1)
    await app.close()
  })

  it('deletes expired records after answering a guarded request', async () => {
    const app = await buildGuardedApp(async (_request, reply) => reply.code(201).send({}), {
      cleanupIntervalMs: 0,
    })
    const { scope, post } = caller()
    const stale = newKey()
    await t.database.db.insert(idempotencyKeys).values({
      scope,
      key: stale,
      method: 'POST',
      path: '/v1/jobs',
      requestHash: 'stale',
      statusCode: 201,
      responseBody: '{}',
      expiresAt: new Date(Date.now() - 60_000),
    })

    expect((await post(app, newKey())).statusCode).toBe(201)
    await vi.waitFor(async () => expect(await recordOf(scope, stale)).toBeUndefined())
    await app.close()
  })

  it('when a 5xx comes after the work committed, then the key is kept and a retry answers 409 IDEMPOTENCY_ANSWER_LOST instead of running again', async () => {
    const job = `job-${randomUUID()}`
    let runs = 0
    const app = await buildGuardedApp(async (request) => {
      runs++
      await doJob(request, job)
      throw new Error('failed after the commit')
    })
    const { scope, post } = caller()
    const key = newKey()

    expect((await post(app, key)).statusCode).toBe(500)
    expect(await recordOf(scope, key)).toMatchObject({
      statusCode: null,
      committedAt: expect.any(Date),
      resourceLocation: `/v1/jobs/${job}`,
    })
    const retry = await post(app, key)
    expect(retry.statusCode).toBe(409)
    expect(retry.json().code).toBe('IDEMPOTENCY_ANSWER_LOST')
    expect(retry.headers.location).toBe(`/v1/jobs/${job}`)
    expect(runs).toBe(1)
    expect(await jobsDone(job)).toHaveLength(1)
    await app.close()
  })

  it("when a request outlives its lease and a retry takes the key over, then the late request rolls back with 409 and only the retry's work commits", async () => {
    let release = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const jobs: string[] = []
    const app = await buildGuardedApp(async (request, reply) => {
      const job = `job-${randomUUID()}`
      jobs.push(job)
      if (jobs.length === 1) await gate
      await doJob(request, job)
      return reply.code(201).send({ job })
    })
    const { scope, post } = caller()
    const key = newKey()

    const late = post(app, key)
    await vi.waitFor(() => expect(jobs).toHaveLength(1))
    await setRecord(scope, key, leaseOver())
    const retry = await post(app, key)
    expect(retry.statusCode).toBe(201)
    release()
    const lateAnswer = await late

    expect(lateAnswer.statusCode).toBe(409)
    expect(lateAnswer.json().code).toBe('IDEMPOTENCY_KEY_IN_PROGRESS')
    expect(await jobsDone(jobs[0] as string)).toHaveLength(0)
    expect(await jobsDone(jobs[1] as string)).toHaveLength(1)
    const replay = await post(app, key)
    expect(replay.headers['idempotent-replayed']).toBe('true')
    expect(replay.json()).toEqual({ job: jobs[1] })
    await app.close()
  })

  it.each([
    ['a read', 'GET', {}],
    ['a public route', 'POST', { auth: { public: true } }],
  ] as const)('refuses to start when %s is marked idempotent', async (_case, method, config) => {
    const app = Fastify()
    await app.register(fakeAuth)
    await app.register(idempotency, { db: t.database.db, ttlSeconds: 60, leaseMs: 30_000 })
    expect(() =>
      app.route({
        method,
        url: '/v1/things',
        config: { ...config, idempotent: true },
        handler: async () => ({}),
      }),
    ).toThrow(/idempotent/)
    await app.close()
  })
})
