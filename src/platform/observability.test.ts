import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../test/helpers.js'

let t: TestApp
let admin: TestUser
let inject: ReturnType<typeof injectAs>

beforeAll(async () => {
  t = await buildTestApp()
  admin = await createTestUser(t, 'admin')
  inject = injectAs(t, admin)
})
afterAll(() => t.close())

describe('request ids', () => {
  it('generates a UUID request id and echoes it on the response', async () => {
    const response = await inject({ url: '/health' })
    expect(response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('keeps a sane incoming X-Request-ID', async () => {
    const response = await inject({
      url: '/health',
      headers: { 'x-request-id': 'trace-abc.123:x' },
    })
    expect(response.headers['x-request-id']).toBe('trace-abc.123:x')
  })

  it.each([
    ['too long', 'a'.repeat(129)],
    ['with spaces and quotes', 'id "injected" value'],
    ['with a newline', 'id\\nforged log line'],
  ])('replaces an incoming X-Request-ID that is %s', async (_case, id) => {
    const response = await inject({ url: '/health', headers: { 'x-request-id': id } })
    expect(response.headers['x-request-id']).not.toBe(id)
    expect(response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('echoes the request id on error responses too', async () => {
    const response = await inject({ url: '/nope', headers: { 'x-request-id': 'err-1' } })
    expect(response.headers['x-request-id']).toBe('err-1')
    expect(response.json().request_id).toBe('err-1')
  })
})

describe('request logs', () => {
  it('writes one line per request with request id, method, route template, status and latency', async () => {
    const id = `log-${unique()}`
    await inject({
      url: '/v1/products/3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10',
      headers: { 'x-request-id': id },
    })
    const lines = t.logs.filter((line) => line.request_id === id)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({
      method: 'GET',
      route: '/v1/products/:id',
      status_code: 404,
      latency_ms: expect.any(Number),
    })
  })

  const lineOf = (id: string) => t.logs.find((line) => line.request_id === id)

  it('when a user calls with a bearer token, then the line carries their user_id and no api_key_id', async () => {
    const id = `log-${unique()}`
    await inject({ url: '/v1/users/me', headers: { 'x-request-id': id } })
    expect(lineOf(id)).toMatchObject({ user_id: admin.id, api_key_id: null, status_code: 200 })
  })

  it('when a caller uses an API key, then the line carries the key id and its owner', async () => {
    const key = (
      await inject({ method: 'POST', url: '/v1/api-keys', payload: { name: 'logs' } })
    ).json()
    const id = `log-${unique()}`
    await t.app.inject({
      url: '/v1/users/me',
      headers: { 'x-api-key': key.key, 'x-request-id': id },
    })
    expect(lineOf(id)).toMatchObject({ user_id: admin.id, api_key_id: key.id, status_code: 200 })
  })

  it('when a request has no caller or fails to authenticate, then user_id and api_key_id are null', async () => {
    const [open, refused] = [`log-${unique()}`, `log-${unique()}`]
    await t.app.inject({ url: '/health', headers: { 'x-request-id': open } })
    await t.app.inject({
      url: '/v1/users/me',
      headers: { authorization: 'Bearer not-a-token', 'x-request-id': refused },
    })
    expect(lineOf(open)).toMatchObject({ user_id: null, api_key_id: null })
    expect(lineOf(refused)).toMatchObject({ user_id: null, api_key_id: null, status_code: 401 })
  })

  it('never writes credentials or passwords to the log', async () => {
    const secrets = [
      'Bearer super-secret-token-value',
      'session=cookie-secret',
      'key-secret-value',
      'hunter2-password',
    ]
    t.app.log.info(
      { headers: { authorization: secrets[0], cookie: secrets[1], 'x-api-key': secrets[2] } },
      'probe',
    )
    t.app.log.info({ body: { password: secrets[3] } }, 'probe')
    await inject({
      url: '/health',
      headers: {
        authorization: secrets[0] as string,
        cookie: secrets[1] as string,
        'x-api-key': secrets[2] as string,
      },
    })
    const written = JSON.stringify(t.logs)
    for (const secret of secrets) expect(written).not.toContain(secret)
    expect(written).toContain('[REDACTED]')
  })
})

describe('metrics', () => {
  function sample(text: string, labels: string): number {
    const line = text.split('\n').find((l) => l.startsWith(`http_requests_total{${labels}}`))
    return line ? Number(line.split(' ').at(-1)) : 0
  }

  it('counts requests by method, route template and status', async () => {
    const labels = 'method="GET",route="/v1/products/:id",status_code="404"'
    const before = sample((await inject({ url: '/metrics' })).body, labels)
    for (let i = 0; i < 3; i++)
      await inject({ url: '/v1/products/3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10' })
    const after = (await inject({ url: '/metrics' })).body

    expect(sample(after, labels)).toBe(before + 3)
    expect(after).toContain(
      'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/products/:id",status_code="404"}',
    )
  })

  it('labels unknown URLs as one unmatched route, so random paths cannot explode the series', async () => {
    await inject({ url: `/random/${unique()}` })
    const text = (await inject({ url: '/metrics' })).body
    expect(text).toContain('route="unmatched"')
    expect(text).not.toContain('/random/')
  })

  it('exposes runtime defaults and database pool gauges in Prometheus text', async () => {
    const response = await inject({ url: '/metrics' })
    expect(response.headers['content-type']).toMatch(/^text\/plain/)
    expect(response.body).toContain('process_cpu_user_seconds_total')
    expect(response.body).toContain('nodejs_eventloop_lag_seconds')
    expect(response.body).toMatch(/db_pool_connections\{state="total"\} \d+/)
    expect(response.body).toMatch(/db_pool_connections\{state="waiting"\} \d+/)
  })
})

describe('Server-Timing', () => {
  it('when SERVER_TIMING is off (the default), then no response carries the header', async () => {
    const response = await t.app.inject({ url: '/health' })
    expect(response.headers['server-timing']).toBeUndefined()
  })

  it('when SERVER_TIMING=true, then every response, errors included, names its total time', async () => {
    const timed = await buildTestApp({ SERVER_TIMING: 'true' })
    try {
      for (const url of ['/health', '/v1/products', '/no-such-route']) {
        const response = await timed.app.inject({ url })
        expect(response.headers['server-timing']).toMatch(/^total;dur=\d+\.\d{2}$/)
      }
    } finally {
      await timed.close()
    }
  })
})
