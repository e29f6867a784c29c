import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { createEmbeddedDatabase } from '../src/db/client.js'
import { migrate } from '../src/db/migrate.js'
import { createPostgresDatabase } from '../src/db/postgres.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** A migrated PGlite data directory dump that each embedded test database starts from. */
    pgliteTemplate: string
    /** `services` under `vitest --mode services`, else `embedded`. */
    databaseMode: 'embedded' | 'services'
  }
}

/**
 * Embedded mode: migrate one PGlite once and hand its dump to every test file, which
 * loads it in a fraction of the time a fresh initdb takes. Services mode: migrate the
 * shared test database once before the files run in parallel.
 */
export default async function setup(project: TestProject) {
  const services = project.vite.config.mode === 'services'
  project.provide('databaseMode', services ? 'services' : 'embedded')
  if (services) {
    const url = process.env.DATABASE_URL
    if (!url || !process.env.REDIS_URL) {
      throw new Error('test:services needs DATABASE_URL and REDIS_URL (see README, "Testing")')
    }
    const database = createPostgresDatabase({
      url,
      poolMax: 1,
      connectTimeoutMs: 5000,
      statementTimeoutMs: 0,
    })
    await migrate(database)
    await database.close()
    project.provide('pgliteTemplate', '')
    return
  }

  const dir = mkdtempSync(join(tmpdir(), 'orderflow-test-'))
  const database = await createEmbeddedDatabase()
  await migrate(database)
  const dump = await database.dumpDataDir()
  await database.close()
  const file = join(dir, 'template.tar')
  writeFileSync(file, Buffer.from(await dump.arrayBuffer()))
  project.provide('pgliteTemplate', file)
  return () => rmSync(dir, { recursive: true, force: true })
}
