import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, createTestUser, injectAs, type TestApp, unique } from '../../test/helpers.js'

let t: TestApp
let inject: ReturnType<typeof injectAs>

beforeAll(async () => {
  t = await buildTestApp({ BODY_LIMIT_BYTES: '2048' })
  inject = injectAs(t, await createTestUser(t, 'admin'))
})
afterAll(() => t.close())

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8'

function expectProblem(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode).toBe(status)
  expect(response.headers['content-type']).toBe(PROBLEM_TYPE)
  const problem = response.json()
  expect(problem).toMatchObject({
    status,
    code,
    title: expect.any(String),
    detail: expect.any(String),
  })
  expect(problem.type).toBe(`urn:orderflow:problem:${code.toLowerCase().replace(/_/g, '-')}`)
  expect(problem.request_id).toBe(response.headers['x-request-id'])
  return problem
}

async function productCount(sku: string) {
  return (await inject({ url: `/v1/products?q=${sku}` })).json().total
}

describe('error responses', () => {
  it('answers an unknown route with 404 ROUTE_NOT_FOUND', async () => {
    const response = await inject({ url: '/v1/nothing-here' })
    const problem = expectProblem(response, 404, 'ROUTE_NOT_FOUND')
    expect(problem.instance).toBe('/v1/nothing-here')
  })

  it('answers a known path with the wrong method with 405 and an Allow header', async () => {
    const response = await inject({ method: 'PUT', url: '/v1/products' })
    expectProblem(response, 405, 'METHOD_NOT_ALLOWED')
    expect(response.headers.allow).toBe('GET, HEAD, POST')
  })

  it('lists the methods of a parametric route in Allow', async () => {
    const response = await inject({
      method: 'POST',
      url: '/v1/products/3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10',
    })
    expectProblem(response, 405, 'METHOD_NOT_ALLOWED')
    expect(response.headers.allow).toBe('DELETE, GET, HEAD, PATCH')
  })

  it('answers malformed JSON with 400 MALFORMED_JSON and stores nothing', async () => {
    const sku = `BAD-${unique()}`
    const response = await inject({
      method: 'POST',
      url: '/v1/products',
      headers: { 'content-type': 'application/json' },
      payload: `{"sku":"${sku}","name":"x","price":"1.00"`,
    })
    expectProblem(response, 400, 'MALFORMED_JSON')
    expect(await productCount(sku)).toBe(0)
  })

  it.each([
    ['__proto__', '{"__proto__":{"isAdmin":true},"sku":"PROTO-1","name":"x","price":"1.00"}'],
    [
      'constructor.prototype',
      '{"constructor":{"prototype":{"isAdmin":true}},"sku":"PROTO-2","name":"x","price":"1.00"}',
    ],
  ])('answers a body carrying %s with 400 and pollutes nothing', async (_key, payload) => {
    const response = await inject({
      method: 'POST',
      url: '/v1/products',
      headers: { 'content-type': 'application/json' },
      payload,
    })
    expectProblem(response, 400, 'MALFORMED_JSON')
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
  })

  it('answers a body over the limit with 413 PAYLOAD_TOO_LARGE', async () => {
    const response = await inject({
      method: 'POST',
      url: '/v1/products',
      payload: { sku: `BIG-${unique()}`, name: 'x', price: '1.00', description: 'd'.repeat(4000) },
    })
    expectProblem(response, 413, 'PAYLOAD_TOO_LARGE')
  })

  it('answers a non-JSON media type with 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    for (const contentType of [
      'text/plain',
      'application/xml',
      'application/x-www-form-urlencoded',
    ]) {
      const response = await inject({
        method: 'POST',
        url: '/v1/products',
        headers: { 'content-type': contentType },
        payload: 'sku=ABC&name=x&price=1.00',
      })
      expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE')
    }
  })

  it('answers validation failures with 422 and an errors list of {path, message}', async () => {
    const response = await inject({
      method: 'POST',
      url: '/v1/products',
      payload: { price: 1 },
    })
    const problem = expectProblem(response, 422, 'VALIDATION_FAILED')
    for (const error of problem.errors)
      expect(Object.keys(error).sort()).toEqual(['message', 'path'])
  })

  it('coerces query strings by their schema types', async () => {
    const response = await inject({ url: '/v1/products?page=2&page_size=5&is_active=true' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ page: 2, page_size: 5 })
  })
})

describe('internal errors', () => {
  it('answers 500 with a generic body that leaks no message, SQL or stack, and logs the cause', async () => {
    const broken = await buildTestApp()
    const user = await createTestUser(broken, 'viewer')
    // A database that went away mid-flight is a genuine internal failure.
    await broken.database.close()
    const response = await injectAs(broken, user)({ url: '/v1/products' })
    await broken.app.close()

    expect(response.statusCode).toBe(500)
    expect(response.headers['content-type']).toBe(PROBLEM_TYPE)
    const problem = response.json()
    expect(problem).toMatchObject({
      status: 500,
      code: 'INTERNAL_ERROR',
      detail: 'An unexpected error occurred.',
    })
    expect(Object.keys(problem).sort()).toEqual([
      'code',
      'detail',
      'instance',
      'request_id',
      'status',
      'title',
      'type',
    ])
    const logged = broken.logs.find((line) => line.msg === 'request failed') as {
      err: { message: string }
    }
    expect(logged.err.message.length).toBeGreaterThan(0)
    expect(response.body).not.toContain(logged.err.message)
  })
})
