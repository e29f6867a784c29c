import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { SECURITY_SCHEMES, type SecuritySchemes } from './auth.js'

const require = createRequire(import.meta.url)
const REDOC_VERSION: string = require('redoc/package.json').version
// Versioned, so the script can be cached for good and a new release is a new URL.
const REDOC_SCRIPT = `/redoc/redoc-${REDOC_VERSION}.standalone.js`
const REDOCLY_LOGO = 'https://cdn.redoc.ly/redoc/logo-mini.svg'

/**
 * The documentation pages load nothing from elsewhere: every script, style, font and image
 * comes from the service itself (Swagger UI from @fastify/swagger-ui, ReDoc from its npm
 * package), so they work offline and behind networks that block CDNs. Inline styles stay
 * allowed — Swagger UI sets style attributes and ReDoc injects its styles at run time —
 * inline scripts do not; ReDoc builds its search index in a blob: worker.
 */
const DOCS_POLICY = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self' 'unsafe-inline'",
  "worker-src 'self' blob:",
].join(';')

/** The docs' policy, upgrading requests as the service's own policy does (behind TLS only). */
function docsPolicy(servicePolicy: unknown): string {
  const upgrade = String(servicePolicy ?? '').includes('upgrade-insecure-requests')
  return upgrade ? `${DOCS_POLICY};upgrade-insecure-requests` : DOCS_POLICY
}

const redocPage = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>OrderFlow API reference</title>
    <link rel="icon" href="data:," />
  </head>
  <body>
    <redoc spec-url="/openapi.json"></redoc>
    <script src="${REDOC_SCRIPT}"></script>
  </body>
</html>
`

/**
 * ReDoc's self-contained bundle, from its npm package: the page works offline and behind
 * networks that block CDNs. About 900 KB, compressed on the way out. Its sidebar footer shows
 * a logo from Redocly's CDN, which the policy refuses (an error in every browser console);
 * without its address the image hides itself, as it does offline, and the footer keeps its
 * text link.
 */
async function readRedocScript(): Promise<Buffer> {
  const bundle = await readFile(require.resolve('redoc/bundles/redoc.standalone.js'), 'utf8')
  return Buffer.from(bundle.replace(REDOCLY_LOGO, ''))
}

/**
 * `load` run on the first call and its result kept for the next ones; a failure is not
 * kept, so the next call tries again. The docs' files are read when someone first opens the
 * docs, not by every process at start (few processes ever serve them).
 */
function firstUse<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined
  return () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined
      throw error
    })
    return loading
  }
}

/**
 * The OpenAPI 3.1 document, generated from the route schemas, served at /openapi.json,
 * with Swagger UI at /docs and ReDoc at /redoc. Registered before any route so that
 * every route is collected.
 */
export interface OpenApiOptions {
  version: string
  /** The security schemes offered (the defaults, plus single sign-on when configured). */
  schemes?: SecuritySchemes
  /**
   * Adds what routes cannot declare when they are registered (each served model's own
   * input schema) to every copy of the document served; it must not change its argument.
   */
  extend?: (document: Record<string, unknown>) => Record<string, unknown>
}

export const openapi = fp(
  async (app: FastifyInstance, options: OpenApiOptions) => {
    const extend = options.extend ?? ((document) => document)
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'OrderFlow API',
          version: options.version,
          description:
            'Order management (customers, products, orders, an audit log) and ONNX model serving. ' +
            'Errors are RFC 9457 ' +
            'problem details (`application/problem+json`); lists are paginated with `page` and `page_size`.',
        },
        components: { securitySchemes: options.schemes ?? SECURITY_SCHEMES },
        tags: [
          { name: 'auth', description: 'Registration, tokens (OAuth 2.0) and logout.' },
          { name: 'users', description: 'Your profile; user administration (admin).' },
          { name: 'api-keys', description: 'API keys for programs: send one as `X-API-Key`.' },
          { name: 'products', description: 'The product catalogue: everyone reads, admins write.' },
          { name: 'customers', description: 'Customers: users and admins write, everyone reads.' },
          {
            name: 'orders',
            description: 'Orders with items, stock, status transitions and idempotent creation.',
          },
          {
            name: 'models',
            description: 'The model registry: ONNX versions with their cards (admins register).',
          },
          {
            name: 'predictions',
            description:
              "Predictions from the models' active (or pinned) versions, validated against each card.",
          },
          {
            name: 'kserve',
            description:
              'The Open Inference Protocol (KServe v2 REST), for KServe, Triton and MLServer clients.',
          },
          { name: 'audit', description: 'The audit log of every change (admin).' },
          { name: 'operations', description: 'Health, readiness and metrics.' },
        ],
      },
    })
    await app.register(swaggerUi, {
      routePrefix: '/docs',
      uiConfig: { docExpansion: 'list', deepLinking: true, persistAuthorization: true },
      // The sign-in answers a code bound to Swagger UI's own PKCE verifier.
      initOAuth: { clientId: 'swagger-ui', usePkceWithAuthorizationCodeGrant: true },
      transformSpecification: (document) => extend(document as Record<string, unknown>),
      transformStaticCSP: docsPolicy,
    })

    const hidden = { schema: { hide: true } }
    app.get('/openapi.json', hidden, async () =>
      extend(app.swagger() as unknown as Record<string, unknown>),
    )
    const redocScript = firstUse(readRedocScript)
    app.get(REDOC_SCRIPT, hidden, async (_request, reply) =>
      reply
        .type('text/javascript; charset=utf-8')
        .header('cache-control', 'public, max-age=31536000, immutable')
        .send(await redocScript()),
    )
    app.get('/redoc', hidden, async (_request, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', docsPolicy(reply.getHeader('content-security-policy')))
        .send(redocPage),
    )
  },
  { name: 'openapi' },
)
