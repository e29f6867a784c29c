import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, type TestApp } from '../../test/helpers.js'

let t: TestApp

beforeAll(async () => {
  t = await buildTestApp()
})
afterAll(() => t.close())

type Operation = {
  summary?: string
  tags?: string[]
  responses?: Record<string, unknown>
  requestBody?: unknown
}

describe('API documentation', () => {
  it('serves an OpenAPI 3.1 document in which every operation has a summary, tags and responses', async () => {
    const response = await t.app.inject({ url: '/openapi.json' })
    expect(response.statusCode).toBe(200)
    const document = response.json()
    expect(document.openapi).toBe('3.1.0')

    const operations = Object.entries(
      document.paths as Record<string, Record<string, Operation>>,
    ).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ id: `${method} ${path}`, op })),
    )
    expect(operations.map((o) => o.id)).toEqual(
      expect.arrayContaining([
        'post /v1/products',
        'get /v1/products/{id}',
        'delete /v1/products/{id}',
        'get /ready',
      ]),
    )
    for (const { id, op } of operations) {
      expect(op.summary, id).toBeTruthy()
      expect(op.tags?.length, id).toBeGreaterThan(0)
      expect(Object.keys(op.responses ?? {}).length, id).toBeGreaterThan(0)
    }
    const create = document.paths['/v1/products'].post
    expect(create.requestBody.content['application/json'].example).toMatchObject({
      sku: 'KB-MECH-001',
    })
    expect(create.responses['422']).toBeDefined()
  })

  it('serves Swagger UI at /docs and ReDoc at /redoc', async () => {
    const swagger = await t.app.inject({ url: '/docs/' })
    expect(swagger.statusCode).toBe(200)
    expect(swagger.body).toContain('swagger-ui')
    const redoc = await t.app.inject({ url: '/redoc' })
    expect(redoc.statusCode).toBe(200)
    expect(redoc.body).toContain('spec-url="/openapi.json"')
  })

  it('when ReDoc is opened, then its script comes from the service itself, cached for good', async () => {
    const host = 'orderflow.internal:8000'
    const page = await t.app.inject({ url: '/redoc', headers: { host } })
    expect(page.statusCode).toBe(200)
    expect(page.body).not.toMatch(/https?:\/\//)
    const csp = String(page.headers['content-security-policy'])
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("worker-src 'self' blob:")
    expect(csp).not.toContain('upgrade-insecure-requests')
    const sources = [...page.body.matchAll(/<script src="([^"]+)"/g)].map((match) => match[1])
    expect(sources).toEqual([expect.stringMatching(/^\/redoc\/redoc-2\.5\.\d+\.standalone\.js$/)])

    const script = await t.app.inject({ url: sources[0] as string, headers: { host } })
    expect(script.statusCode).toBe(200)
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8')
    expect(script.headers['cache-control']).toBe('public, max-age=31536000, immutable')
    expect(script.rawPayload.length).toBeGreaterThan(500_000)
    expect(script.body).toContain('Redoc')
    // Its footer's logo would come from Redocly's CDN, which the policy refuses.
    expect(script.body).not.toContain('cdn.redoc.ly')
  })

  it('when Swagger UI is reached by a name other than localhost, then every asset of the page loads from that name over HTTP', async () => {
    const host = 'orderflow.internal:8000'
    const page = await t.app.inject({ url: '/docs/', headers: { host } })
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-security-policy']).not.toContain('upgrade-insecure-requests')
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1])
    expect(assets.length).toBeGreaterThan(2)
    for (const asset of assets) {
      const url = new URL(asset as string, `http://${host}/docs/`)
      expect(url.host, asset).toBe(host)
      const response = await t.app.inject({ url: url.pathname, headers: { host } })
      expect(response.statusCode, asset).toBe(200)
    }
  })

  it('when the docs are opened, then their pages and assets may load only from the service itself', async () => {
    const urls = [
      '/docs/',
      '/docs/static/swagger-ui-bundle.js',
      '/docs/static/swagger-initializer.js',
      '/docs/static/oauth2-redirect.html',
      '/redoc',
    ]
    for (const url of urls) {
      const response = await t.app.inject({ url })
      expect(response.statusCode, url).toBe(200)
      const policy = Object.fromEntries(
        String(response.headers['content-security-policy'])
          .split(';')
          .map((directive) => directive.trim().split(/\s+/))
          .map(([name, ...sources]) => [name, sources]),
      )
      expect(policy['default-src'], url).toEqual(["'self'"])
      expect(policy['script-src'], url).toEqual(["'self'"])
      expect(policy['script-src-attr'], url).toEqual(["'none'"])
      expect(policy['connect-src'], url).toEqual(["'self'"])
      expect(policy['font-src'], url).toEqual(["'self'", 'data:'])
      expect(policy['img-src'], url).toEqual(["'self'", 'data:'])
      expect(policy['style-src'], url).toEqual(["'self'", "'unsafe-inline'"])
      expect(policy['worker-src'], url).toEqual(["'self'", 'blob:'])
      expect(policy['object-src'], url).toEqual(["'none'"])
    }
    for (const page of ['/docs/', '/redoc', '/docs/static/oauth2-redirect.html']) {
      const body = (await t.app.inject({ url: page })).body
      const references = [...body.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1])
      expect(references.length, page).toBeGreaterThan(0)
      for (const reference of references) expect(reference, page).not.toMatch(/^(https?:)?\/\//)
    }
  })

  it('when TLS_TERMINATED=true, then the docs upgrade insecure requests like the rest of the service', async () => {
    const https = await buildTestApp({ TLS_TERMINATED: 'true' })
    const answers = await Promise.all(['/docs/', '/redoc'].map((url) => https.app.inject({ url })))
    await https.close()
    for (const answer of answers) {
      expect(answer.headers['content-security-policy']).toMatch(/;upgrade-insecure-requests$/)
    }
  })

  it('serves no documentation when DOCS_ENABLED=false', async () => {
    const quiet = await buildTestApp({ DOCS_ENABLED: 'false' })
    const answers = await Promise.all(
      ['/openapi.json', '/docs/', '/redoc'].map((url) => quiet.app.inject({ url })),
    )
    await quiet.close()
    for (const answer of answers) expect(answer.statusCode).toBe(404)
  })
})
