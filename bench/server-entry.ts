/**
 * The benchmark's server process. It runs the compiled app in dist/ (the build as deployed,
 * loaded as plain JavaScript) behind this entry rather than dist/server.js, so that the real
 * server and its auth-free baselines are the same runtime and differ in one thing only: who
 * resolves the caller. The baselines exist only here, outside the build; no environment
 * variable or setting reaches them.
 *
 *   --auth on        the real identity provider (access tokens, API keys)
 *   --auth off       any credentials stand for one admin: no signature, no lookup
 *   --auth jwt-only  access tokens verified, the per-request user lookup skipped: the ceiling
 *                    of a perfect user cache
 */
import { parseArgs } from 'node:util'
import type * as AppModule from '../src/app.js'
import type * as ConfigModule from '../src/config.js'
import type * as AccessTokensModule from '../src/modules/auth/access-tokens.js'
import type { Authenticate } from '../src/platform/auth.js'
import type { Caller } from '../src/shared/caller.js'

const AUTH_MODES = ['on', 'off', 'jwt-only'] as const
type AuthMode = (typeof AUTH_MODES)[number]

const BENCH_CALLER: Caller = {
  userId: '00000000-0000-4000-8000-00000000bec4',
  role: 'admin',
  apiKeyId: null,
}

/** Computed paths, so the type checker takes the types from src/ and never needs a build. */
function fromBuild<T>(path: string): Promise<T> {
  return import(new URL(`../dist/${path}`, import.meta.url).href)
}

async function main() {
  const { values } = parseArgs({ options: { auth: { type: 'string', default: 'on' } } })
  const mode = AUTH_MODES.find((candidate) => candidate === values.auth)
  if (!mode) throw new Error(`--auth must be one of ${AUTH_MODES.join(', ')}`)

  const { buildApp } = await fromBuild<typeof AppModule>('app.js')
  const { loadConfig } = await fromBuild<typeof ConfigModule>('config.js')
  const config = loadConfig()
  const app = await buildApp(config, { authenticate: await identityProvider(mode, config) })

  process.once('SIGTERM', () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
  await app.listen({ host: config.HOST, port: config.PORT })
}

async function identityProvider(
  mode: AuthMode,
  config: ConfigModule.Config,
): Promise<Authenticate | undefined> {
  if (mode === 'on') return undefined
  if (mode === 'off') return async () => BENCH_CALLER
  const { createAccessTokens } = await fromBuild<typeof AccessTokensModule>(
    'modules/auth/access-tokens.js',
  )
  const accessTokens = createAccessTokens({
    secret: config.JWT_SECRET,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    ttlSeconds: config.ACCESS_TOKEN_TTL_S,
    clockToleranceSeconds: config.JWT_CLOCK_TOLERANCE_S,
  })
  return async (credentials) => {
    if (credentials.kind !== 'bearer') throw new Error('jwt-only serves bearer tokens only')
    const claims = await accessTokens.verify(credentials.token)
    return { userId: claims.sub, role: claims.role, apiKeyId: null }
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
