import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { inject } from 'vitest'
import { type App, buildApp } from '../src/app.js'
import { type Config, loadConfig } from '../src/config.js'
import {
  createEmbeddedDatabase,
  createPostgresDatabase,
  type DatabaseHandle,
} from '../src/db/client.js'

/** True under `npm run test:services`: PostgreSQL and Redis instead of PGlite. */
export const SERVICES_MODE = inject('databaseMode') === 'services'

/** A validated config for tests: quiet logs, no `.env`, and the services in services mode. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig(
    {
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
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
export async function createTestDatabase(): Promise<DatabaseHandle> {
  if (SERVICES_MODE) {
    return createPostgresDatabase({
      url: process.env.DATABASE_URL as string,
      poolMax: 5,
      connectTimeoutMs: 5000,
      statementTimeoutMs: 15000,
    })
  }
  const template = readFileSync(inject('pgliteTemplate'))
  return createEmbeddedDatabase({ loadDataDir: new Blob([template]) })
}

export interface TestApp {
  app: App
  database: DatabaseHandle
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[]
  close(): Promise<void>
}

export async function buildTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const database = await createTestDatabase()
  const logs: Record<string, unknown>[] = []
  const logStream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line))
      done()
    },
  })
  const app = await buildApp(testConfig({ LOG_LEVEL: 'info', ...env }), { database, logStream })
  return {
    app,
    database,
    logs,
    async close() {
      await app.close()
      await database.close()
    },
  }
}

/** A unique suffix so rows made by concurrent test files never collide. */
export function unique(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`.toUpperCase()
}
