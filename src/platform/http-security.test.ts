import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, type TestApp } from '../../test/helpers.js'

let t: TestApp

beforeAll(async () => {
  t = await buildTestApp({ CORS_ORIGINS: 'https://app.example.com, https://admin.example.com' })
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
})

describe('security headers and compression', () => {
  it('sets the usual security headers', async () => {
    const response = await t.app.inject({ url: '/health' })
    expect(response.headers['x-content-type-options']).toBe('nosniff')
    expect(response.headers['x-frame-options']).toBe('SAMEORIGIN')
    expect(response.headers['content-security-policy']).toContain("default-src 'self'")
    expect(response.headers['strict-transport-security']).toBeDefined()
  })

  it('compresses large responses for clients that accept gzip', async () => {
    const response = await t.app.inject({
      url: '/openapi.json',
      headers: { 'accept-encoding': 'gzip' },
    })
    expect(response.headers['content-encoding']).toBe('gzip')
  })
})
