import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../test/helpers.js'
import { formBody, modelUpload, shippedBytes, shippedCard } from '../../test/models.js'

let t: TestApp
let admin: TestUser
let asAdmin: ReturnType<typeof injectAs>

beforeAll(async () => {
  t = await buildTestApp()
  admin = await createTestUser(t, 'admin')
  asAdmin = injectAs(t, admin)
})
afterAll(() => t.close())

const NUL = '\u0000'
const LONE_SURROGATE = '\ud800'

/** A 422 naming `path`, and no trace of a stack or of the database in the body. */
function expectRefused(response: LightMyRequestResponse, path: string) {
  expect(response.statusCode, response.body).toBe(422)
  expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
  const problem = response.json()
  expect(problem.code).toBe('VALIDATION_FAILED')
  expect(problem.errors.map((error: { path: string }) => error.path)).toContain(path)
  expect(response.body).not.toMatch(/ at |invalid byte sequence|SELECT|INSERT/)
}

async function productCount(q: string) {
  return (await asAdmin({ url: `/v1/products?q=${encodeURIComponent(q)}` })).json().total
}

describe('NUL characters and lone surrogates', () => {
  it.each([
    ['a NUL', NUL],
    ['a lone surrogate', LONE_SURROGATE],
  ])(
    'when a JSON body field holds %s, then 422 names the field and nothing is stored',
    async (_name, bad) => {
      const sku = `NUL-${unique()}`
      const response = await asAdmin({
        method: 'POST',
        url: '/v1/products',
        payload: { sku, name: `pen${bad}`, price: '1.00' },
      })
      expectRefused(response, 'body.name')
      expect(await productCount(sku)).toBe(0)
    },
  )

  it('when a nested body field or a key holds a NUL, then 422 names each', async () => {
    const response = await asAdmin({
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: `key${NUL}`, [`x${NUL}`]: 1 },
    })
    expectRefused(response, 'body.name')
    expect(response.json().errors.map((error: { path: string }) => error.path)).toContain(
      'body["x\\u0000"]',
    )
  })

  it.each(['/v1/products', '/v1/customers', '/v1/orders', '/v1/users'])(
    'when q= on %s holds a NUL, then 422 names query.q',
    async (url) => {
      expectRefused(await asAdmin({ url: `${url}?q=a%00b` }), 'query.q')
    },
  )

  it('when a path parameter holds a NUL, then 422 names it', async () => {
    expectRefused(await asAdmin({ url: '/v1/models/iris%00' }), 'params.name')
  })

  it('when a form-encoded field of the token endpoint holds a NUL, then it answers the OAuth 400 invalid_request', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=password&username=${encodeURIComponent(`a${NUL}@example.com`)}&password=x`,
    })
    // RFC 6749 §5.2 fixes the token endpoint's error shape; validation failures are 400 there.
    expect(response.statusCode).toBe(400)
    expect(response.json()).toMatchObject({ error: 'invalid_request' })
    expect(t.logs.filter((line) => line.msg === 'request failed')).toEqual([])
  })

  it('when the registration full_name holds a NUL, then 422 names it', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/register',
      payload: {
        email: `nul-${unique().toLowerCase()}@example.com`,
        password: 'long-enough-password',
        full_name: `A${NUL}B`,
      },
    })
    expectRefused(response, 'body.full_name')
  })

  it('when a model card sent as a multipart field holds a NUL, then 422 names it by its card path', async () => {
    const card = { ...shippedCard('iris'), description: `iris${NUL}` }
    const response = await asAdmin({
      method: 'POST',
      url: '/v1/models',
      ...(await modelUpload({ card, onnx: shippedBytes('iris') })),
    })
    expectRefused(response, 'card.description')
  })

  it('when a string holds a well-formed surrogate pair, then it is accepted', async () => {
    const sku = `EMOJI-${unique()}`
    const response = await asAdmin({
      method: 'POST',
      url: '/v1/products',
      payload: { sku, name: 'pen \u{1F58A}', price: '1.00' },
    })
    expect(response.statusCode, response.body).toBe(201)
    expect(response.json().name).toBe('pen \u{1F58A}')
  })
})

describe('huge numbers', () => {
  const lists = [
    '/v1/products',
    '/v1/customers',
    '/v1/orders',
    '/v1/users',
    '/v1/audit-events',
  ] as const

  it.each(
    lists.flatMap((url) =>
      ['1e400', '99999999999999999999', '1000000001'].map((page) => [url, page]),
    ),
  )('when %s is asked for page=%s, then 422 names query.page', async (url, page) => {
    expectRefused(await asAdmin({ url: `${url}?page=${page}` }), 'query.page')
  })

  it.each(lists)(
    'when %s is asked for the last allowed page, then it answers an empty page',
    async (url) => {
      const response = await asAdmin({ url: `${url}?page=1000000000&page_size=100` })
      expect(response.statusCode, response.body).toBe(200)
      expect(response.json()).toMatchObject({ items: [], page: 1_000_000_000, page_size: 100 })
    },
  )

  it('when a JSON number overflows to Infinity, then 422 names it and nothing is registered', async () => {
    const name = `inf-${unique().toLowerCase()}`
    const card = JSON.stringify({ ...shippedCard('iris'), name, metrics: { accuracy: 0 } })
    const form = new FormData()
    // JSON.parse reads 1e400 as Infinity, which the stored JSON would turn into null.
    form.append('card', card.replace('"accuracy":0', '"accuracy":1e400'))
    form.append('onnx', new Blob([shippedBytes('iris')]), 'model.onnx')
    const response = await asAdmin({ method: 'POST', url: '/v1/models', ...(await formBody(form)) })
    expectRefused(response, 'card.metrics.accuracy')
    expect((await asAdmin({ url: `/v1/models/${name}` })).statusCode).toBe(404)
  })
})
