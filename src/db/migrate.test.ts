import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SERVICES_MODE } from '../../test/helpers.js'
import { verifyPassword } from '../modules/auth/passwords.js'
import { createEmbeddedDatabase, type DatabaseHandle } from './client.js'
import { MIGRATIONS_DIR, migrate, rollback } from './migrate.js'
import { createPostgresDatabase } from './postgres.js'

/**
 * Runs against a database of its own — a fresh PGlite, or a PostgreSQL database created
 * for this file — because rolling back drops tables that other test files are using.
 */
let database: DatabaseHandle
let dropDatabase = async () => {}

beforeAll(async () => {
  if (!SERVICES_MODE) {
    database = await createEmbeddedDatabase()
    return
  }
  const url = new URL(process.env.DATABASE_URL as string)
  const name = `orderflow_migrate_${process.pid}_${Date.now()}`
  const admin = new pg.Client({ connectionString: url.toString() })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  url.pathname = `/${name}`
  database = createPostgresDatabase({
    url: url.toString(),
    poolMax: 2,
    connectTimeoutMs: 5000,
    statementTimeoutMs: 0,
  })
  dropDatabase = async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
})

afterAll(async () => {
  await database.close()
  await dropDatabase()
})

async function rollbackAll() {
  while ((await rollback(database)).applied.length > 0);
}

async function tables(): Promise<string[]> {
  let names: string[] = []
  await database.withScriptTransaction(async (run) => {
    const { rows } = await run(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'schema_migrations' ORDER BY 1`,
    )
    names = (rows as { table_name: string }[]).map((r) => r.table_name)
  })
  return names
}

const versions = readdirSync(MIGRATIONS_DIR)
  .filter((file) => /^\d+\.do\./.test(file))
  .map((file) => Number(file.split('.')[0]))
  .sort((a, b) => a - b)

describe('migrations', () => {
  it('has an undo script for every do script', () => {
    const files = readdirSync(MIGRATIONS_DIR)
    for (const version of versions) {
      const prefix = String(version).padStart(3, '0')
      expect(
        files.some((f) => f.startsWith(`${prefix}.undo.`)),
        `undo for ${prefix}`,
      ).toBe(true)
    }
  })

  it('migrates up, rolls every migration back one by one, and migrates up again', async () => {
    const up = await migrate(database)
    expect(up).toMatchObject({ from: 0, to: versions.at(-1) })
    const migrated = await tables()
    expect(migrated).toContain('products')

    for (const version of [...versions].reverse()) {
      const step = await rollback(database)
      expect(step.from).toBe(version)
      expect(step.to).toBe(versions.filter((v) => v < version).at(-1) ?? 0)
    }
    expect(await tables()).toEqual([])
    expect((await rollback(database)).applied).toEqual([])

    const again = await migrate(database)
    expect(again.to).toBe(versions.at(-1))
    expect(await tables()).toEqual(migrated)
    expect((await migrate(database)).applied).toEqual([])
  })

  it('applies nothing when a later migration of the same run fails', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'orderflow-migrations-'))
    writeFileSync(join(directory, '001.do.good.sql'), 'CREATE TABLE half_written (id int);')
    writeFileSync(join(directory, '001.undo.good.sql'), 'DROP TABLE half_written;')
    writeFileSync(
      join(directory, '002.do.bad.sql'),
      'ALTER TABLE table_that_does_not_exist ADD COLUMN x int;',
    )
    writeFileSync(join(directory, '002.undo.bad.sql'), 'SELECT 1;')
    await rollbackAll()
    const before = await tables()

    await expect(migrate(database, directory)).rejects.toThrow(/table_that_does_not_exist/)
    expect(await tables()).toEqual(before)
    expect(before).not.toContain('half_written')
  })

  it('when 012 is undone while single sign-on users exist, then they keep a password hash no password verifies', async () => {
    await migrate(database)
    await database.withScriptTransaction(async (run) => {
      await run(
        `INSERT INTO users (email, full_name, role, password_hash) VALUES ('sso@example.com', 'SSO', 'user', NULL)`,
      )
    })
    let step = await rollback(database)
    while (step.to >= 12) step = await rollback(database)

    let hashes: unknown[] = []
    await database.withScriptTransaction(async (run) => {
      const { rows } = await run(`SELECT password_hash FROM users WHERE email = 'sso@example.com'`)
      hashes = (rows as { password_hash: unknown }[]).map((row) => row.password_hash)
    })
    expect(hashes).toEqual(['!'])
    expect(await verifyPassword('!', '!')).toBe(false)
    expect((await migrate(database)).to).toBe(versions.at(-1))
  })
})
