import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { SERVICES_MODE } from '../../test/helpers.js'
import { freePort } from '../../test/processes.js'
import { createPostgresDatabase } from './postgres.js'
import { explainConnectionError } from './startup-errors.js'

/** The error the driver raises on the first query, as the migration at start-up meets it. */
async function firstQueryError(url: string): Promise<unknown> {
  const database = createPostgresDatabase({
    url,
    poolMax: 1,
    connectTimeoutMs: 5000,
    statementTimeoutMs: 0,
  })
  try {
    await database.ping()
  } catch (error) {
    return error
  } finally {
    await database.close()
  }
  throw new Error('the query succeeded')
}

describe('explainConnectionError', { timeout: 120_000 }, () => {
  it('when nothing listens on the server address, then it says PostgreSQL cannot be reached there, without the password', async () => {
    const url = `postgres://app:hunter2@127.0.0.1:${await freePort()}/orders`
    const explained = explainConnectionError(await firstQueryError(url), url)
    expect(explained?.message).toMatch(
      /^Cannot reach PostgreSQL on 127\.0\.0\.1:\d+ \(ECONNREFUSED\): start it, or correct the host and port in DATABASE_URL\.$/,
    )
    expect(explained?.message).not.toContain('hunter2')
  })

  it('when an error is not about connecting, then it is left alone', () => {
    expect(explainConnectionError(new Error('boom'), 'postgres://x@h/db')).toBeUndefined()
    expect(
      explainConnectionError(Object.assign(new Error('dup'), { code: '23505' }), 'postgres://h/db'),
    ).toBeUndefined()
  })

  it.runIf(SERVICES_MODE)(
    'when the database does not exist, then it names the database and the createdb command',
    async () => {
      const url = new URL(process.env.DATABASE_URL as string)
      url.pathname = '/orderflow_missing_database'
      const explained = explainConnectionError(await firstQueryError(url.href), url.href)
      expect(explained?.message).toBe(
        `PostgreSQL database "orderflow_missing_database" does not exist on ${url.hostname}:${url.port || 5432}. ` +
          `Create it with \`createdb -h ${url.hostname} -p ${url.port || 5432} -U ${url.username || 'postgres'} orderflow_missing_database\`, ` +
          'or point DATABASE_URL at an existing database.',
      )
    },
  )

  it('when the CLI cannot reach the database, then it prints one line and exits 1', async () => {
    const url = `postgres://app:hunter2@127.0.0.1:${await freePort()}/orders`
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'migrate'], {
      env: { ...process.env, NODE_ENV: 'test', DATABASE_URL: url },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    const code = await new Promise((resolve) => child.on('close', resolve))
    expect(code).toBe(1)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toContain('Cannot reach PostgreSQL on 127.0.0.1:')
    expect(stderr).not.toContain('hunter2')
  })
})
