import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'drizzle-orm'
import Fastify, { type FastifyInstance } from 'fastify'
import pg from 'pg'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, SERVICES_MODE } from '../../test/helpers.js'
import { freePort } from '../../test/processes.js'
import { createModelRepository } from '../modules/models/repository.js'
import { createTestBackend } from '../modules/models/runtime/test-backend.js'
import { createModelServer } from '../modules/models/serving/model-server.js'
import { problemHandler } from '../platform/problem.js'
import { AppError } from '../shared/errors.js'
import type { DatabaseHandle } from './client.js'
import { createPostgresDatabase } from './postgres.js'

/** Text that must never reach a problem body: SQL, parameters, hosts, driver codes. */
const DRIVER_TEXT = /select|Failed query|params|127\.0\.0\.1|ECONNREFUSED|terminat|timeout/i

/** A TCP listener that accepts connections and never answers, like a stalled server. */
async function silentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/orderflow`,
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

describe('a database error in a problem body', () => {
  const opened: DatabaseHandle[] = []
  let app: FastifyInstance
  let silent: Awaited<ReturnType<typeof silentServer>>

  /** The failing operation runs for real, through the same driver and Drizzle as the service. */
  async function route(path: string, work: () => Promise<unknown>) {
    app.get(path, async () => {
      await work()
      return { ok: true }
    })
  }

  beforeAll(async () => {
    silent = await silentServer()
    const postgres = (url: string) => {
      const handle = createPostgresDatabase({
        url,
        poolMax: 1,
        connectTimeoutMs: 300,
        statementTimeoutMs: 0,
      })
      opened.push(handle)
      return handle
    }
    const refused = postgres(`postgres://postgres@127.0.0.1:${await freePort()}/orderflow`)
    const stalled = postgres(silent.url)
    const healthy = await createTestDatabase()
    opened.push(healthy)

    app = Fastify({ logger: false })
    await app.register(problemHandler)
    await route('/refused', () => refused.db.execute(sql`select ${'secret-param'}::text`))
    await route('/stalled', () => stalled.db.execute(sql`select 1`))
    await route('/bad-sql', () => healthy.db.execute(sql`select * from no_such_table`))
    if (SERVICES_MODE) {
      const own = postgres(process.env.DATABASE_URL as string)
      await route('/admin-shutdown', () =>
        own.db.execute(sql`select pg_terminate_backend(pg_backend_pid())`),
      )
    }
    await app.ready()
  })
  afterAll(async () => {
    await app.close()
    await Promise.all(opened.map((handle) => handle.close().catch(() => {})))
    await silent.close()
  })

  const outages = [
    ['a refused connection', '/refused'],
    ['a connection attempt that times out', '/stalled'],
    ...(SERVICES_MODE ? [['a connection the server terminates (57P01)', '/admin-shutdown']] : []),
  ]
  it.each(outages)(
    'when a query meets %s, then the answer is 503 DATABASE_UNAVAILABLE with Retry-After and no driver text',
    async (_, path) => {
      const response = await app.inject({ url: path })
      expect(response.statusCode).toBe(503)
      expect(response.headers['content-type']).toContain('application/problem+json')
      expect(response.headers['retry-after']).toBe('2')
      expect(response.json().code).toBe('DATABASE_UNAVAILABLE')
      expect(response.body).not.toMatch(DRIVER_TEXT)
      expect(response.body).not.toContain('secret-param')
    },
  )

  it('when a query fails for any other reason, then the answer is 500 with a generic detail and no SQL', async () => {
    const response = await app.inject({ url: '/bad-sql' })
    expect(response.statusCode).toBe(500)
    expect(response.json().code).toBe('INTERNAL_ERROR')
    expect(response.body).not.toMatch(/no_such_table|select/i)
  })

  it('when a model version lookup fails on a database error, then the model server keeps nothing and hands the handler an error it masks', async () => {
    const database = await createTestDatabase()
    const repository = createModelRepository(database.db)
    await database.close()
    const server = createModelServer({
      backend: createTestBackend({ models: {} }),
      source: {
        activeVersions: async () => [],
        findServable: (name, version) => repository.findServable(name, version),
        activeVersionOf: async () => '1.0.0',
        activeVersionNames: async () => [],
      },
      maxLoaded: 2,
      batching: () => ({ maxBatchSize: 1, maxWaitMs: 0 }),
      log: pino({ level: 'silent' }),
    })
    const failure = await server.resolve('iris', { version: '1.0.0' }).catch((error) => error)
    const states = server.states()
    await server.close()
    // Not a domain error: its message (the failed query) never reaches a problem detail.
    expect(failure).toBeInstanceOf(Error)
    expect(failure).not.toBeInstanceOf(AppError)
    expect(states).toEqual([])
  })
})

describe.runIf(SERVICES_MODE)('a connection checked out of the pool', () => {
  it('when the server ends it in the middle of a transaction, then the transaction fails, the process carries on and the next query is served', async () => {
    const url = process.env.DATABASE_URL as string
    const database = createPostgresDatabase({
      url,
      poolMax: 2,
      connectTimeoutMs: 2000,
      statementTimeoutMs: 0,
    })
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    try {
      const transaction = database.db.transaction(async (tx) => {
        const { rows } = (await tx.execute(sql`select pg_backend_pid() as pid`)) as unknown as {
          rows: { pid: number }[]
        }
        await admin.query('select pg_terminate_backend($1)', [rows[0]?.pid])
        // The connection dies while no query runs on it: the case that used to end the process.
        await sleep(200)
        await tx.execute(sql`select 1`)
      })
      await expect(transaction).rejects.toThrow()
      await expect(database.ping()).resolves.toBeUndefined()
    } finally {
      await admin.end()
      await database.close()
    }
  })
})

describe.runIf(SERVICES_MODE)('a transaction whose BEGIN meets a dead connection', () => {
  it('when the connection drops as BEGIN is sent, then the transaction fails, the connection leaves the pool and the pool still closes', async () => {
    const target = new URL(process.env.DATABASE_URL as string)
    // A proxy that cuts the connection the moment it sees BEGIN, once: the server "went
    // away" between the pool handing the client out and the transaction starting.
    let cutAtBegin = true
    const proxy = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname)
      client.on('data', (chunk) => {
        if (cutAtBegin && /begin/i.test(chunk.toString('latin1'))) {
          cutAtBegin = false
          client.destroy()
          upstream.destroy()
          return
        }
        upstream.write(chunk)
      })
      upstream.on('data', (chunk) => client.write(chunk))
      for (const socket of [client, upstream]) socket.on('error', () => {})
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    const url = new URL(target)
    url.hostname = '127.0.0.1'
    url.port = String((proxy.address() as AddressInfo).port)
    const database = createPostgresDatabase({
      url: url.toString(),
      poolMax: 1,
      connectTimeoutMs: 2000,
      statementTimeoutMs: 0,
    })
    try {
      await database.ping()
      await expect(database.db.transaction((tx) => tx.execute(sql`select 1`))).rejects.toThrow()
      // A leaked client would still count in the pool, checked out for good.
      expect(database.poolStats()).toMatchObject({ total: 0, waiting: 0 })
      await expect(
        database.db.transaction((tx) => tx.execute(sql`select 1`)),
      ).resolves.toBeDefined()
    } finally {
      const closed = await Promise.race([
        database.close().then(() => true),
        sleep(5000).then(() => false),
      ])
      proxy.close()
      expect(closed).toBe(true)
    }
  })
})
