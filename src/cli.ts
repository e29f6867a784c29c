import { parseArgs } from 'node:util'
import { databaseSettings } from './app.js'
import { createAdmin } from './cli/create-admin.js'
import { promptSecret } from './cli/prompt.js'
import { ConfigError, loadConfig } from './config.js'
import { openDatabase } from './db/client.js'
import { migrate, rollback } from './db/migrate.js'
import { AppError, ValidationFailed } from './shared/errors.js'

const USAGE = `Usage: npm run cli -- <command> [options]

Commands:
  migrate                               apply every pending migration
  rollback                              undo the most recent migration
  create-admin --email <email> [--name <full name>]
                                        create an admin user; the password comes from
                                        ADMIN_PASSWORD, else from a prompt (or stdin)
`

const commands: Record<string, (args: string[]) => Promise<void>> = {
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
  async 'create-admin'(args) {
    const { values } = parseArgs({
      args,
      options: { email: { type: 'string' }, name: { type: 'string', default: 'Administrator' } },
    })
    if (!values.email) throw new UsageError('create-admin needs --email')
    const password = process.env.ADMIN_PASSWORD || (await promptSecret('Password: '))
    await withDatabase(async (database) => {
      // A fresh installation has no tables yet; the server would migrate at start as well.
      await migrate(database)
      const admin = await createAdmin(database, {
        email: values.email as string,
        password,
        full_name: values.name as string,
      })
      console.log(`Created admin ${admin.email} (id ${admin.id}).`)
    })
  },
}

class UsageError extends Error {}

async function withDatabase(
  work: (database: Awaited<ReturnType<typeof openDatabase>>) => Promise<void>,
) {
  // ADMIN_* are start-up settings of the server; here ADMIN_PASSWORD is only an input.
  const { ADMIN_EMAIL: _email, ADMIN_PASSWORD: _password, ...env } = process.env
  const database = await openDatabase(databaseSettings(loadConfig(env)))
  try {
    await work(database)
  } finally {
    await database.close()
  }
}

async function main() {
  const [name, ...args] = process.argv.slice(2)
  const command = name ? commands[name] : undefined
  if (!command) throw new UsageError(name ? `unknown command: ${name}` : 'no command given')
  await command(args)
}

main().catch((error) => {
  if (
    error instanceof UsageError ||
    (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
  ) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}`)
    process.exit(2)
  }
  console.error(describe(error))
  process.exit(1)
})

/** Operator-facing text for expected failures; anything else keeps its stack trace. */
function describe(error: unknown): unknown {
  if (error instanceof ConfigError) return error.message
  if (error instanceof ValidationFailed) {
    const lines = error.errors.map(
      ({ path, message }) => `  ${path.replace(/^\w+\./, '')}: ${message}`,
    )
    return `${error.message}\n${lines.join('\n')}`
  }
  if (error instanceof AppError) return error.message
  return error
}
