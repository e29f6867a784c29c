import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { createEmbeddedDatabase } from '../src/db/client.js'
import { migrate } from '../src/db/migrate.js'
import { createPostgresDatabase } from '../src/db/postgres.js'
import { administer } from './postgres-admin.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** A migrated PGlite data directory dump that each embedded test database starts from. */
    pgliteTemplate: string
    /** `services` under `vitest --mode services`, else `embedded`. */
    databaseMode: 'embedded' | 'services'
    /**
     * Services mode: a migrated database that a test's private database is copied from
     * (`CREATE DATABASE ... TEMPLATE`), about twice as fast as migrating a new one.
     */
    postgresTemplate: string
  }
}

/**
 * Embedded mode: migrate one PGlite once and hand its dump to every test file, which
 * loads it in a fraction of the time a fresh initdb takes. Services mode: migrate the
 * shared test database once before the files run in parallel, and a template database
 * beside it for the tests that need a database of their own.
 */
export default async function setup(project: TestProject) {
  const services = project.vite.config.mode === 'services'
  project.provide('databaseMode', services ? 'services' : 'embedded')
  if (services) {
    const url = process.env.DATABASE_URL
    if (!url || !process.env.REDIS_URL) {
      throw new Error('test:services needs DATABASE_URL and REDIS_URL (see README, "Testing")')
    }
    const migrated = async (target: string) => {
      const database = createPostgresDatabase({
        url: target,
        poolMax: 1,
        connectTimeoutMs: 5000,
        statementTimeoutMs: 0,
      })
      await migrate(database)
      await database.close()
    }
    await migrated(url)
    // Named per run, so two runs against one server never drop each other's template.
    const shared = new URL(url)
    const template = `${shared.pathname.slice(1)}_t${process.pid}`.slice(0, 63)
    await administer(url, `DROP DATABASE IF EXISTS "${template}"`)
    await administer(url, `CREATE DATABASE "${template}"`)
    const templateUrl = new URL(shared)
    templateUrl.pathname = `/${template}`
    await migrated(templateUrl.href)
    project.provide('pgliteTemplate', '')
    project.provide('postgresTemplate', template)
    return () => administer(url, `DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`)
  }

  const dir = mkdtempSync(join(tmpdir(), 'orderflow-test-'))
  const database = await createEmbeddedDatabase()
  await migrate(database)
  const dump = await database.dumpDataDir()
  await database.close()
  const file = join(dir, 'template.tar')
  writeFileSync(file, Buffer.from(await dump.arrayBuffer()))
  project.provide('pgliteTemplate', file)
  project.provide('postgresTemplate', '')
  return () => rmSync(dir, { recursive: true, force: true })
}
