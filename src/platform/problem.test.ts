import { connect } from 'node:net'
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

  it.each([
    ['a JSON body without Content-Type', 'POST', '/v1/products', undefined, 'application/json'],
    ['a JSON body', 'POST', '/v1/models', 'application/json', 'multipart/form-data'],
    [
      'a text body',
      'POST',
      '/v1/auth/token',
      'text/plain',
      'application/x-www-form-urlencoded or application/json',
    ],
  ])(
    'when %s reaches %s %s, then the 415 names the accepted media types',
    async (_name, method, url, contentType, accepted) => {
      const response = await inject({
        method: method as 'POST',
        url,
        headers: contentType ? { 'content-type': contentType } : {},
        payload: '{}',
      })
      const problem = expectProblem(response, 415, 'UNSUPPORTED_MEDIA_TYPE')
      expect(problem.detail).toContain(`send ${accepted}.`)
      if (contentType) expect(problem.detail).toContain(contentType)
    },
  )

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

  it('when a price is sent as a number, then the 422 says a decimal string is expected, with an example', async () => {
    const response = await inject({
      method: 'POST',
      url: '/v1/products',
      payload: { sku: `NUM-${unique()}`, name: 'x', price: 19.99 },
    })
    const problem = expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(problem.errors).toEqual([
      {
        path: 'body.price',
        message: 'must be a decimal string with at most 2 decimals, e.g. "19.99"',
      },
    ])
  })

  it.each([
    '/v1/api-keys',
    '/v1/users/me',
    '/v1/products/3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10',
    '/v1/models',
    '/health',
  ])('when %s gets a query parameter it does not define, then 422 names it', async (url) => {
    const response = await inject({ url: `${url}?pagesize=5` })
    const problem = expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(problem.errors).toEqual([{ path: 'query.pagesize', message: 'is not allowed' }])
  })

  it('when a route declares query parameters without closing them, then an unknown one is a 422 too', async () => {
    const response = await inject({
      method: 'POST',
      url: '/v1/models/iris/predict?verison=1.0.0',
      payload: { inputs: {} },
    })
    const problem = expectProblem(response, 422, 'VALIDATION_FAILED')
    expect(problem.errors).toContainEqual({ path: 'query.verison', message: 'is not allowed' })
  })

  it('documents the 422 of a route whose query string is closed by default', async () => {
    const document = (await inject({ url: '/openapi.json' })).json()
    expect(document.paths['/v1/api-keys'].get.responses['422']).toBeDefined()
    expect(document.paths['/v1/api-keys'].get.parameters ?? []).toEqual([])
  })

  it('coerces query strings by their schema types', async () => {
    const response = await inject({ url: '/v1/products?page=2&page_size=5&is_active=true' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toMatchObject({ page: 2, page_size: 5 })
  })
})

describe('errors raised before routing', () => {
  it('when a path segment is not valid UTF-8 once decoded, then 400 BAD_URL_ENCODING as problem+json', async () => {
    const response = await inject({ url: '/v1/orders/%ED%A0%80' })
    const problem = expectProblem(response, 400, 'BAD_URL_ENCODING')
    expect(problem.instance).toBe('/v1/orders/%ED%A0%80')
  })

  it('documents the 400 and 414 of every operation with a path parameter', async () => {
    const document = (await inject({ url: '/openapi.json' })).json()
    const parametric = Object.entries(
      document.paths as Record<string, Record<string, { responses: object }>>,
    ).filter(([path]) => path.includes('{'))
    expect(parametric.length).toBeGreaterThan(5)
    for (const [path, operations] of parametric) {
      for (const [method, operation] of Object.entries(operations)) {
        expect(Object.keys(operation.responses), `${method} ${path}`).toEqual(
          expect.arrayContaining(['400', '414']),
        )
      }
    }
  })

  it('when a path parameter is longer than the router allows, then 414 URI_TOO_LONG as problem+json', async () => {
    const response = await inject({ url: `/v1/orders/${'a'.repeat(500)}` })
    expectProblem(response, 414, 'URI_TOO_LONG')
  })

  describe('over a socket', () => {
    let port: number
    beforeAll(async () => {
      await t.app.listen({ host: '127.0.0.1', port: 0 })
      port = (t.app.server.address() as { port: number }).port
    })

    /** Sends `raw` on a new connection and reads until the server closes it. */
    function exchange(raw: string): Promise<string> {
      return new Promise((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.end(raw))
        let answer = ''
        socket.on('data', (chunk) => {
          answer += chunk
        })
        socket.on('close', () => resolve(answer))
        socket.on('error', reject)
      })
    }

    function problemOf(answer: string) {
      const [head = '', body = ''] = answer.split('\r\n\r\n')
      expect(head.toLowerCase()).toContain(`content-type: ${PROBLEM_TYPE}`)
      return JSON.parse(body)
    }

    it('when the headers exceed the parser limit, then 431 HEADERS_TOO_LARGE as problem+json', async () => {
      const answer = await exchange(
        `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      )
      expect(answer).toMatch(/^HTTP\/1.1 431 /)
      expect(problemOf(answer)).toMatchObject({ status: 431, code: 'HEADERS_TOO_LARGE' })
    })

    it('when the request is not HTTP, then 400 MALFORMED_REQUEST as problem+json', async () => {
      const answer = await exchange('GET /health HTTP/1.1\r\nHost x\r\n\r\n')
      expect(answer).toMatch(/^HTTP\/1.1 400 /)
      expect(problemOf(answer)).toMatchObject({ status: 400, code: 'MALFORMED_REQUEST' })
    })
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
