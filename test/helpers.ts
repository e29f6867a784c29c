import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { hash } from '@node-rs/argon2'
import type { InjectOptions } from 'fastify'
import { inject } from 'vitest'
import { type App, type AppOverrides, buildApp } from '../src/app.js'
import { type Config, loadConfig } from '../src/config.js'
import { createEmbeddedDatabase, type DatabaseHandle, type QueryTracer } from '../src/db/client.js'
import { createPostgresDatabase } from '../src/db/postgres.js'
import { createUserRepository } from '../src/modules/users/repository.js'
import type { Role } from '../src/shared/caller.js'
import { administer } from './postgres-admin.js'

/** True under `npm run test:services`: PostgreSQL and Redis instead of PGlite. */
export const SERVICES_MODE = inject('databaseMode') === 'services'

/** A validated config for tests: quiet logs, no `.env`, and the services in services mode. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig(
    {
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      // Tests share one client address (and, in services mode, one Redis): limits are
      // lifted here and tested on their own with distinct addresses.
      RATE_LIMIT_MAX: '100000',
      LOGIN_RATE_LIMIT_MAX: '100000',
      PREDICT_RATE_LIMIT_MAX: '100000',
      // Loading the shipped ONNX models in every test app would cost each a worker thread.
      MODELS_REGISTER_SHIPPED: 'false',
      ...(SERVICES_MODE
        ? { DATABASE_URL: process.env.DATABASE_URL, REDIS_URL: process.env.REDIS_URL }
        : {}),
      ...env,
    },
    null,
  )
}

/**
 * A migrated database for one test file: a private in-memory PGlite in embedded mode,
 * the shared test database in services mode (tests create their own rows and never
 * assume the tables are empty).
 */
export async function createTestDatabase(
  options: { traceQuery?: QueryTracer } = {},
): Promise<DatabaseHandle> {
  if (SERVICES_MODE) {
    return createPostgresDatabase({
      url: process.env.DATABASE_URL as string,
      poolMax: 5,
      connectTimeoutMs: 5000,
      statementTimeoutMs: 15000,
      ...options,
    })
  }
  pgliteTemplate ??= new Blob([readFileSync(inject('pgliteTemplate'))])
  return createEmbeddedDatabase({ loadDataDir: pgliteTemplate, ...options })
}

/** The migrated data directory (about 40 MB), read once per test file: a Blob never changes. */
let pgliteTemplate: Blob | undefined

/**
 * A migrated database of the calling test file's own, in services mode too: for tests whose
 * subject is state global to a database, such as which models are active and load at every
 * start, which other files sharing the test database would change under them. In services
 * mode it is a copy of the migrated template the global setup made, dropped on close, and
 * `url` names it (for a worker or a second process to open); in embedded mode every test
 * database is private already and has no URL.
 */
export async function createPrivateTestDatabase(): Promise<DatabaseHandle & { url?: string }> {
  if (!SERVICES_MODE) return createTestDatabase()
  const shared = process.env.DATABASE_URL as string
  const name = `${new URL(shared).pathname.slice(1)}_${unique().toLowerCase()}`.slice(0, 63)
  await administer(shared, `CREATE DATABASE "${name}" TEMPLATE "${inject('postgresTemplate')}"`)
  const url = new URL(shared)
  url.pathname = `/${name}`
  const database = createPostgresDatabase({
    url: url.href,
    poolMax: 5,
    connectTimeoutMs: 5000,
    statementTimeoutMs: 15000,
  })
  return {
    ...database,
    url: url.href,
    async close() {
      await database.close()
      await administer(shared, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    },
  }
}

export interface TestApp {
  app: App
  database: DatabaseHandle
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[]
  close(): Promise<void>
}

export interface TestAppOptions extends Pick<AppOverrides, 'inference' | 'redis'> {
  /** A database of its own also in services mode (see `createPrivateTestDatabase`). */
  privateDatabase?: boolean
  /** Another app's database, for two instances over one database; it stays open on close. */
  database?: DatabaseHandle
}

export async function buildTestApp(
  env: Record<string, string> = {},
  { privateDatabase = false, database: shared, ...overrides }: TestAppOptions = {},
): Promise<TestApp> {
  const database =
    shared ?? (privateDatabase ? await createPrivateTestDatabase() : await createTestDatabase())
  const logs: Record<string, unknown>[] = []
  const logStream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line))
      done()
    },
  })
  const app = await buildApp(testConfig({ LOG_LEVEL: 'info', ...env }), {
    ...overrides,
    database,
    logStream,
  })
  return {
    app,
    database,
    logs,
    async close() {
      await app.close()
      if (!shared) await database.close()
    },
  }
}

/** A unique suffix so rows made by concurrent test files never collide. */
export function unique(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`.toUpperCase()
}

export interface TestUser {
  id: string
  email: string
  password: string
  role: Role
  /** `Authorization: Bearer ...` for this user, from a real login at the token endpoint. */
  headers: { authorization: string }
  refreshToken: string
}

/**
 * Argon2id at the lowest cost the algorithm allows. A hash carries its own parameters, so the
 * service verifies it as it verifies its own (OWASP-cost) hashes, and a test user's login
 * spends about 1 ms instead of 25 ms of CPU on each of the hash and the verification. Hashes
 * the service makes itself (sign-up, password changes, unknown emails) keep the real cost.
 */
const CHEAP_ARGON2ID = { algorithm: 2, memoryCost: 64, timeCost: 1, parallelism: 1 }

/** A user with `role`, made straight in the database, then logged in through the API. */
export async function createTestUser(t: TestApp, role: Role = 'user'): Promise<TestUser> {
  const email = `${role}-${unique().toLowerCase()}@example.com`
  const password = `pw-${unique()}-long-enough`
  const row = await createUserRepository(t.database.db).insert({
    email,
    fullName: `Test ${role}`,
    role,
    passwordHash: await hash(password, CHEAP_ARGON2ID),
  })
  const tokens = await login(t, email, password)
  return {
    id: row.id,
    email,
    password,
    role,
    headers: { authorization: `Bearer ${tokens.access_token}` },
    refreshToken: tokens.refresh_token,
  }
}

export async function login(t: TestApp, username: string, password: string) {
  const response = await t.app.inject({
    method: 'POST',
    url: '/v1/auth/token',
    payload: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  })
  if (response.statusCode !== 200)
    throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  return response.json() as { access_token: string; refresh_token: string; expires_in: number }
}

/** `app.inject` on behalf of `user`. */
export function injectAs(t: TestApp, user: TestUser) {
  return (options: InjectOptions) =>
    t.app.inject({ ...options, headers: { ...user.headers, ...(options.headers ?? {}) } })
}
