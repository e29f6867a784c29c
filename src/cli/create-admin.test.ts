import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { SERVICES_MODE, unique } from '../../test/helpers.js'
import { runCli } from '../../test/processes.js'
import { openDatabase } from '../db/client.js'
import { verifyPassword } from '../modules/auth/passwords.js'
import { createUserRepository } from '../modules/users/repository.js'

/** The CLI as an operator runs it: a real process on a real data directory or database. */
const dataDir = mkdtempSync(join(tmpdir(), 'orderflow-cli-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

function cli(args: string[], options: { env?: Record<string, string>; stdin?: string } = {}) {
  return runCli(args, {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      DATA_DIR: dataDir,
      DATABASE_URL: SERVICES_MODE ? (process.env.DATABASE_URL as string) : '',
      ADMIN_EMAIL: '',
      ADMIN_PASSWORD: '',
      ...options.env,
    },
    stdin: options.stdin ?? '',
  })
}

async function findUser(email: string) {
  const database = await openDatabase({
    url: SERVICES_MODE ? process.env.DATABASE_URL : undefined,
    dataDir,
    poolMax: 1,
    connectTimeoutMs: 5000,
    statementTimeoutMs: 0,
  })
  try {
    return await createUserRepository(database.db).findByEmail(email)
  } finally {
    await database.close()
  }
}

const email = () => `admin-${unique().toLowerCase()}@example.com`

// Starts CLI processes, which take seconds each on a loaded machine.
describe('npm run cli -- create-admin', { timeout: 120_000 }, () => {
  it('creates an admin with the password from ADMIN_PASSWORD, on a fresh installation', async () => {
    const address = email()
    const run = await cli(['create-admin', '--email', address, '--name', 'Grace Hopper'], {
      env: { ADMIN_PASSWORD: 'a long enough password' },
    })
    expect(run.stderr).not.toContain('a long enough password')
    expect(run).toMatchObject({ code: 0 })
    expect(run.stdout).toContain(`Created admin ${address}`)

    const user = await findUser(address)
    expect(user).toMatchObject({ role: 'admin', fullName: 'Grace Hopper', isActive: true })
    expect(await verifyPassword(user?.passwordHash as string, 'a long enough password')).toBe(true)
  })

  it('reads the password from standard input when the variable is unset', async () => {
    const address = email()
    const run = await cli(['create-admin', '--email', address], { stdin: 'piped secret value\n' })
    expect(run.code).toBe(0)
    const user = await findUser(address)
    expect(await verifyPassword(user?.passwordHash as string, 'piped secret value')).toBe(true)
  })

  it('refuses a short password, names the problem and creates nobody', async () => {
    const address = email()
    const run = await cli(['create-admin', '--email', address], {
      env: { ADMIN_PASSWORD: 'too short' },
    })
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/password: must NOT have fewer than 12 characters/)
    expect(await findUser(address)).toBeUndefined()
  })

  it('refuses an email that is taken, case-insensitively, and keeps the first user', async () => {
    const address = email()
    const env = { ADMIN_PASSWORD: 'the first password' }
    expect((await cli(['create-admin', '--email', address], { env })).code).toBe(0)
    const again = await cli(['create-admin', '--email', address.toUpperCase()], {
      env: { ADMIN_PASSWORD: 'another password here' },
    })
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('already exists')
    const user = await findUser(address)
    expect(await verifyPassword(user?.passwordHash as string, 'the first password')).toBe(true)
  })

  it('when --email is missing, then it answers exit code 2 and the usage text', async () => {
    // An unknown command is the same usage error, tested in src/cli.test.ts.
    const missing = await cli(['create-admin'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('create-admin needs --email')
    expect(missing.stderr).toContain('Usage: npm run cli')
  })
})
