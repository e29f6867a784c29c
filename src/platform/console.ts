import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { projectPath } from '../shared/project-files.js'
import { securityHeaders } from './http-security.js'
import { sendProblem } from './problem.js'

/** Where `npm run build:console` writes the console. */
export const CONSOLE_DIST = projectPath('console/dist/')

/** The placeholder the console's build leaves where each page gets its nonce (vite.config.ts). */
const NONCE_PLACEHOLDER = 'CONSOLE_CSP_NONCE'

/**
 * The console runs only its own bundled scripts and styles. React sets element styles
 * through the CSSOM, which style-src does not govern; the few <style> elements its UI
 * library adds carry the page's nonce. Images may be blob: URLs (the preview of a dropped
 * image); `connect-src 'self'` keeps a compromised bundle from sending tokens elsewhere.
 */
export function consoleSecurityPolicy(options: { https: boolean; nonce?: string }): string {
  const nonce = options.nonce ? [`'nonce-${options.nonce}'`] : []
  const headers = securityHeaders({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", ...nonce],
        imgSrc: ["'self'", 'data:', 'blob:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        upgradeInsecureRequests: options.https ? [] : null,
      },
    },
  })
  return headers['content-security-policy'] as string
}

// Vite names every asset by its content hash: a new build is a new URL.
const IMMUTABLE = 'public, max-age=31536000, immutable'

/**
 * Serves the web console's built files at /console, under its own Content-Security-Policy,
 * with index.html for the console's client-side routes (/console/orders/…).
 * Registered with the prefix `/console`.
 */
export async function consoleRoutes(
  app: FastifyInstance,
  options: { root?: string; https: boolean },
) {
  const root = options.root ?? CONSOLE_DIST
  const assetPolicy = consoleSecurityPolicy({ https: options.https })
  // After http-security's global hook, so this policy replaces the API's one on these routes.
  app.addHook('onRequest', (_request, reply, done) => {
    reply.header('content-security-policy', assetPolicy)
    done()
  })

  if (!existsSync(join(root, 'index.html'))) {
    app.log.warn({ root }, 'console not built: run `npm run build:console`')
    app.get('/*', { schema: { hide: true } }, (request, reply) =>
      sendProblem(request, reply, {
        status: 503,
        code: 'CONSOLE_NOT_BUILT',
        detail: 'The web console has not been built; run `npm run build:console`.',
      }),
    )
    return
  }

  // Split once at the placeholder: each page is the parts joined by a fresh nonce.
  const page = (await readFile(join(root, 'index.html'), 'utf8')).split(NONCE_PLACEHOLDER)
  const sendPage = (reply: FastifyReply) => {
    const nonce = randomBytes(16).toString('base64')
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', consoleSecurityPolicy({ https: options.https, nonce }))
      .send(page.join(nonce))
  }

  await app.register(fastifyStatic, {
    root,
    // One route per built file, listed at start: anything else reaches the fallback below.
    wildcard: false,
    index: false,
    cacheControl: false,
    allowedPath: (path) => path !== '/index.html',
    setHeaders: (reply, path) => {
      reply.header('cache-control', path.includes('/assets/') ? IMMUTABLE : 'no-cache')
    },
  })
  app.get('/', { schema: { hide: true } }, (_request, reply) => sendPage(reply))
  app.get('/*', { schema: { hide: true } }, (request, reply) => {
    // A missing asset is a 404, not the page: a browser would try to run HTML as a script.
    const path = request.url.split('?')[0] ?? ''
    if (/\/assets\/|\.[a-z0-9]+$/i.test(path)) {
      return sendProblem(request, reply, {
        status: 404,
        code: 'ROUTE_NOT_FOUND',
        detail: `No console file ${path}.`,
      })
    }
    return sendPage(reply)
  })
}
