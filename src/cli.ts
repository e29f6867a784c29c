import { parseArgs } from 'node:util'
import { Presets, SingleBar } from 'cli-progress'
import { databaseSettings } from './app.js'
import { createAdmin } from './cli/create-admin.js'
import { promptSecret } from './cli/prompt.js'
import { seed } from './cli/seed.js'
import { loadConfig } from './config.js'
import { openDatabase } from './db/client.js'
import { migrate, rollback } from './db/migrate.js'
import { explainConnectionError } from './db/startup-errors.js'
import { AppError, ValidationFailed } from './shared/errors.js'
import { OperatorError } from './shared/operator-error.js'

const USAGE = `Usage: npm run cli -- <command> [options]

Commands:
  help, --help, -h                      print this text
  migrate                               apply every pending migration
  rollback                              undo the most recent migration
  create-admin --email <email> [--name <full name>]
                                        create an admin user; the password comes from
                                        ADMIN_PASSWORD, else from a prompt (or stdin)
  seed [--customers 1000] [--products 200] [--orders 10000] [--items <per order>]
       [--seed 42] [--owner <email>]
                                        fill the database with realistic demo data; the
                                        orders belong to --owner (default: the first admin)
                                        and have 1-5 items unless --items is given
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

  async seed(args) {
    const { values } = parseArgs({
      args,
      options: {
        customers: { type: 'string', default: '1000' },
        products: { type: 'string', default: '200' },
        orders: { type: 'string', default: '10000' },
        seed: { type: 'string', default: '42' },
        owner: { type: 'string' },
        items: { type: 'string' },
      },
    })
    const counts = {
      customers: count(values.customers, '--customers'),
      products: count(values.products, '--products'),
      orders: count(values.orders, '--orders'),
    }
    const bar = new SingleBar(
      {
        format: 'seeding [{bar}] {percentage}% | {value}/{total} rows | {duration}s',
        hideCursor: true,
      },
      Presets.shades_classic,
    )
    await withDatabase(async (database) => {
      await migrate(database)
      bar.start(counts.customers + counts.products + counts.orders, 0)
      try {
        await seed(database, {
          ...counts,
          seed: count(values.seed, '--seed'),
          ownerEmail: values.owner,
          itemsPerOrder: values.items === undefined ? undefined : count(values.items, '--items'),
          onProgress: (done) => bar.update(done),
        })
      } finally {
        bar.stop()
      }
      console.log(
        `Seeded ${counts.customers} customers, ${counts.products} products and ${counts.orders} orders.`,
      )
    })
  },
}

function count(value: string | undefined, flag: string): number {
  const parsed = Number(value)
  if (!Number.isSafeInteger(parsed) || parsed < 0) {
    throw new UsageError(`${flag} must be a whole number >= 0`)
  }
  return parsed
}

class UsageError extends Error {}

async function withDatabase(
  work: (database: Awaited<ReturnType<typeof openDatabase>>) => Promise<void>,
) {
  // ADMIN_* are start-up settings of the server; here ADMIN_PASSWORD is only an input.
  const { ADMIN_EMAIL: _email, ADMIN_PASSWORD: _password, ...env } = process.env
  const config = loadConfig(env)
  const database = await openDatabase(databaseSettings(config))
  try {
    await work(database)
  } catch (error) {
    throw (config.DATABASE_URL && explainConnectionError(error, config.DATABASE_URL)) || error
  } finally {
    await database.close()
  }
}

const HELP = new Set(['help', '--help', '-h'])

async function main() {
  const argv = process.argv.slice(2)
  if (argv.some((arg) => HELP.has(arg))) {
    process.stdout.write(USAGE)
    return
  }
  const [name, ...args] = argv
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
  if (error instanceof OperatorError) return error.message
  if (error instanceof ValidationFailed) {
    const lines = error.errors.map(
      ({ path, message }) => `  ${path.replace(/^\w+\./, '')}: ${message}`,
    )
    return `${error.message}\n${lines.join('\n')}`
  }
  if (error instanceof AppError) return error.message
  return error
}
