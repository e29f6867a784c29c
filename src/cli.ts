import { parseArgs } from 'node:util'
import { databaseSettings } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { openDatabase } from './db/client.js'
import { migrate, rollback } from './db/migrate.js'

const USAGE = `Usage: npm run cli -- <command>

Commands:
  migrate    apply every pending migration
  rollback   undo the most recent migration
`

const commands: Record<string, () => Promise<void>> = {
  async migrate() {
    await withDatabase(async (database) => {
      const result = await migrate(database)
      console.log(
        result.applied.length === 0
          ? `Schema is up to date (version ${result.to}).`
          : `Migrated from version ${result.from} to ${result.to}.`,
      )
    })
  },
  async rollback() {
    await withDatabase(async (database) => {
      const result = await rollback(database)
      console.log(
        result.applied.length === 0
          ? 'Nothing to roll back.'
          : `Rolled back from version ${result.from} to ${result.to}.`,
      )
    })
  },
}

async function withDatabase(
  work: (database: Awaited<ReturnType<typeof openDatabase>>) => Promise<void>,
) {
  const database = await openDatabase(databaseSettings(loadConfig()))
  try {
    await work(database)
  } finally {
    await database.close()
  }
}

async function main() {
  const { positionals } = parseArgs({ allowPositionals: true, strict: false })
  const command = positionals[0] ? commands[positionals[0]] : undefined
  if (!command) {
    process.stderr.write(USAGE)
    process.exit(2)
  }
  await command()
}

main().catch((error) => {
  console.error(error instanceof ConfigError ? error.message : error)
  process.exit(1)
})
