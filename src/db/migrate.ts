import { join } from 'node:path'
import Postgrator from 'postgrator'
import { projectPath } from '../shared/project-files.js'
import type { DatabaseHandle, ScriptRunner } from './client.js'

/** `migrations/` at the project root. */
export const MIGRATIONS_DIR = projectPath('migrations/')

export interface MigrationResult {
  from: number
  to: number
  applied: string[]
}

/**
 * Applies every pending migration. The whole run shares one transaction, so a failing
 * migration leaves the schema exactly as it was; the advisory lock makes API instances
 * that start together apply each migration once.
 */
export function migrate(
  database: DatabaseHandle,
  directory = MIGRATIONS_DIR,
): Promise<MigrationResult> {
  return withMigrator(database, directory, async (postgrator) => {
    const from = await postgrator.getDatabaseVersion()
    const applied = await postgrator.migrate('max')
    return {
      from,
      to: await postgrator.getDatabaseVersion(),
      applied: applied.map((m) => m.filename),
    }
  })
}

/** Undoes the most recent migration (a no-op on an empty schema). */
export function rollback(
  database: DatabaseHandle,
  directory = MIGRATIONS_DIR,
): Promise<MigrationResult> {
  return withMigrator(database, directory, async (postgrator) => {
    const from = await postgrator.getDatabaseVersion()
    if (from === 0) return { from, to: 0, applied: [] }
    const previous = (await postgrator.getMigrations())
      .filter((m) => m.action === 'do' && m.version < from)
      .reduce((max, m) => Math.max(max, m.version), 0)
    const applied = await postgrator.migrate(String(previous))
    return { from, to: previous, applied: applied.map((m) => m.filename) }
  })
}

function withMigrator<T>(
  database: DatabaseHandle,
  directory: string,
  work: (postgrator: Postgrator) => Promise<T>,
): Promise<T> {
  return database.withScriptTransaction(async (run: ScriptRunner) => {
    await run(`SELECT pg_advisory_xact_lock(hashtext('orderflow.migrations'))`)
    const postgrator = new Postgrator({
      driver: 'pg',
      migrationPattern: join(directory, '*'),
      schemaTable: 'schema_migrations',
      validateChecksums: true,
      execQuery: run,
      execSqlScript: async (script) => {
        await run(script)
      },
    })
    return work(postgrator)
  })
}
