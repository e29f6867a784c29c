import { gunzipSync, gzipSync } from 'node:zlib'
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

beforeAll(async () => {
  t = await buildTestApp({ CORS_ORIGINS: 'https://app.example.com, https://admin.example.com' })
  admin = await createTestUser(t, 'admin')
})
afterAll(() => t.close())

describe('CORS', () => {
  it('allows an origin on the allowlist and exposes the request id', async () => {
    const response = await t.app.inject({
      url: '/health',
      headers: { origin: 'https://app.example.com' },
    })
    expect(response.headers['access-control-allow-origin']).toBe('https://app.example.com')
    expect(String(response.headers['access-control-expose-headers'])).toContain('X-Request-ID')
  })

  it('answers a preflight from an allowed origin', async () => {
    const response = await t.app.inject({
      method: 'OPTIONS',
      url: '/v1/products',
      headers: { origin: 'https://admin.example.com', 'access-control-request-method': 'POST' },
    })
    expect(response.statusCode).toBe(204)
    expect(response.headers['access-control-allow-origin']).toBe('https://admin.example.com')
  })

  it('gives no CORS grant to an origin off the allowlist', async () => {
    const response = await t.app.inject({
      url: '/health',
      headers: { origin: 'https://evil.example.net' },
    })
    expect(response.headers['access-control-allow-origin']).toBeUndefined()
  })

  it('when CORS_ORIGINS is empty, then a preflight gets no grant and answers 405 with Allow', async () => {
    const closed = await buildTestApp({ CORS_ORIGINS: '' })
    try {
      const response = await closed.app.inject({
        method: 'OPTIONS',
        url: '/v1/products',
        headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
      })
      expect(response.statusCode).toBe(405)
      expect(response.headers.allow).toBe('GET, HEAD, POST')
      expect(response.headers['access-control-allow-origin']).toBeUndefined()
      expect(response.headers['access-control-allow-methods']).toBeUndefined()
    } finally {
      await closed.close()
    }
  })
})

describe('security headers and compression', () => {
  it('sets the usual security headers', async () => {
    const response = await t.app.inject({ url: '/health' })
    expect(response.headers['x-content-type-options']).toBe('nosniff')
    expect(response.headers['x-frame-options']).toBe('SAMEORIGIN')
    expect(response.headers['content-security-policy']).toContain("default-src 'self'")
  })

  it('when TLS_TERMINATED is not set, then neither HSTS nor upgrade-insecure-requests is sent', async () => {
    // Either would send a browser that reached the service over plain HTTP to an https://
    // that does not answer (a container reached by its name, a LAN address).
    const response = await t.app.inject({ url: '/docs/', headers: { host: 'orderflow:8000' } })
    expect(response.headers['strict-transport-security']).toBeUndefined()
    expect(response.headers['content-security-policy']).not.toContain('upgrade-insecure-requests')
  })

  it('when TLS_TERMINATED=true, then HSTS and upgrade-insecure-requests are sent', async () => {
    const https = await buildTestApp({ TLS_TERMINATED: 'true' })
    const response = await https.app.inject({ url: '/health' })
    await https.close()
    expect(response.headers['strict-transport-security']).toMatch(/max-age=\d+/)
    expect(response.headers['content-security-policy']).toContain('upgrade-insecure-requests')
  })

  it('sends the same full set of security headers on every reply, errors included', async () => {
    for (const url of ['/health', '/v1/products', '/no-such-route']) {
      const response = await t.app.inject({ url })
      expect(response.headers).toMatchObject({
        'content-security-policy':
          "default-src 'self';base-uri 'self';font-src 'self';form-action 'self';frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self'",
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-resource-policy': 'same-origin',
        'origin-agent-cluster': '?1',
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
        'x-dns-prefetch-control': 'off',
        'x-download-options': 'noopen',
        'x-frame-options': 'SAMEORIGIN',
        'x-permitted-cross-domain-policies': 'none',
        'x-xss-protection': '0',
      })
    }
  })

  it('when a body is under the threshold, then it leaves uncompressed even for a client that accepts gzip', async () => {
    const response = await t.app.inject({ url: '/health', headers: { 'accept-encoding': 'gzip' } })
    expect(response.headers['content-encoding']).toBeUndefined()
    expect(response.json()).toEqual({ status: 'ok' })
  })

  it('when a client sends no Accept-Encoding, then even a large body leaves uncompressed', async () => {
    const response = await t.app.inject({ url: '/openapi.json' })
    expect(response.headers['content-encoding']).toBeUndefined()
    expect(response.json().openapi).toMatch(/^3\./)
  })

  it('compresses a large list for a client that accepts gzip', async () => {
    const create = injectAs(t, admin)
    for (let i = 0; i < 12; i++) {
      await create({
        method: 'POST',
        url: '/v1/products',
        payload: {
          sku: `CMP-${unique()}`,
          name: 'a product with a long enough name',
          price: '1.00',
        },
      })
    }
    const response = await create({
      url: '/v1/products?page_size=100',
      headers: { 'accept-encoding': 'gzip' },
    })
    expect(response.headers['content-encoding']).toBe('gzip')
    expect(JSON.parse(gunzipSync(response.rawPayload).toString()).items.length).toBeGreaterThan(10)
  })

  it('compresses large responses for clients that accept gzip', async () => {
    const response = await t.app.inject({
      url: '/openapi.json',
      headers: { 'accept-encoding': 'gzip' },
    })
    expect(response.headers['content-encoding']).toBe('gzip')
  })
})

describe('compressed request bodies', () => {
  it.each([
    [
      'valid gzip',
      'gzip',
      (sku: string) => gzipSync(JSON.stringify({ sku, name: 'x', price: '1.00' })),
    ],
    ['bytes that are not gzip', 'gzip', (_sku: string) => Buffer.from('not gzip at all')],
    ['deflate', 'deflate', (_sku: string) => Buffer.from('x')],
    ['a list of codings', 'gzip, identity', (_sku: string) => Buffer.from('x')],
  ])(
    'when a body arrives as %s, then 415 UNSUPPORTED_CONTENT_ENCODING at once and nothing is stored',
    async (_name, encoding, body) => {
      const sku = `GZ-${unique()}`
      // Unauthenticated too: the refusal comes before credentials are looked at.
      for (const inject of [injectAs(t, admin), t.app.inject.bind(t.app)]) {
        const response = await inject({
          method: 'POST',
          url: '/v1/products',
          headers: { 'content-type': 'application/json', 'content-encoding': encoding },
          payload: body(sku),
        })
        expect(response.statusCode).toBe(415)
        expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8')
        expect(response.headers['accept-encoding']).toBe('identity')
        expect(response.json().code).toBe('UNSUPPORTED_CONTENT_ENCODING')
      }
      const list = await injectAs(t, admin)({ url: `/v1/products?q=${sku}` })
      expect(list.json().total).toBe(0)
    },
  )

  it('when a body declares the identity coding, then it is read as usual', async () => {
    const response = await injectAs(
      t,
      admin,
    )({
      method: 'POST',
      url: '/v1/products',
      headers: { 'content-encoding': 'identity' },
      payload: { sku: `ID-${unique()}`, name: 'x', price: '1.00' },
    })
    expect(response.statusCode, response.body).toBe(201)
  })
})
