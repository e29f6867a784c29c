import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { consoleRoutes } from './console.js'

const PAGE =
  '<!doctype html><meta property="csp-nonce" nonce="CONSOLE_CSP_NONCE">' +
  '<script type="module" src="/console/assets/app-1a2b.js" nonce="CONSOLE_CSP_NONCE"></script>'

let root: string
let app: FastifyInstance

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'console-dist-'))
  mkdirSync(join(root, 'assets'))
  writeFileSync(join(root, 'index.html'), PAGE)
  writeFileSync(join(root, 'assets', 'app-1a2b.js'), 'console.log(1)')
  app = Fastify()
  await app.register(consoleRoutes, { prefix: '/console', root, https: false })
})

afterAll(async () => {
  await app.close()
  rmSync(root, { recursive: true, force: true })
})

const nonceOf = (policy: string) => /'nonce-([^']+)'/.exec(policy)?.[1]

describe('console static files', () => {
  it('answers a client-side route with the page, its nonce fresh per request and in the policy', async () => {
    const first = await app.inject({ url: '/console/orders/123' })
    const second = await app.inject({ url: '/console' })
    expect(first.statusCode).toBe(200)
    expect(first.headers['content-type']).toMatch(/^text\/html/)
    expect(first.headers['cache-control']).toBe('no-store')
    const policy = String(first.headers['content-security-policy'])
    expect(policy).toContain("script-src 'self';")
    expect(policy).not.toContain('unsafe-inline')
    const nonce = nonceOf(policy)
    expect(nonce).toMatch(/^[A-Za-z0-9+/]{22}==$/)
    expect(first.body).not.toContain('CONSOLE_CSP_NONCE')
    expect(first.body.split(`nonce="${nonce}"`)).toHaveLength(3)
    expect(nonceOf(String(second.headers['content-security-policy']))).not.toBe(nonce)
  })

  it('serves hashed assets as immutable, and a missing asset is a 404, not the page', async () => {
    const asset = await app.inject({ url: '/console/assets/app-1a2b.js' })
    expect(asset.statusCode).toBe(200)
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable')
    expect(asset.headers['content-security-policy']).toContain("default-src 'self'")
    const missing = await app.inject({ url: '/console/assets/app-ffff.js' })
    expect(missing.statusCode).toBe(404)
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/)
  })

  it('when the console was never built, then /console answers 503 CONSOLE_NOT_BUILT', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'console-empty-'))
    const bare = Fastify({ logger: false })
    await bare.register(consoleRoutes, { prefix: '/console', root: empty, https: false })
    const response = await bare.inject({ url: '/console/' })
    expect(response.statusCode).toBe(503)
    expect(response.json()).toMatchObject({ code: 'CONSOLE_NOT_BUILT' })
    await bare.close()
    rmSync(empty, { recursive: true, force: true })
  })
})
