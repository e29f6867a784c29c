import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import pg from 'pg'
import { lockDataDir } from './data-dir-lock.js'
import { PGliteThread, type PGliteThreadTransaction } from './pglite-thread.js'
import * as schema from './schema/index.js'

export type Schema = typeof schema
/** The Drizzle handle both drivers share; repositories only ever see this type. */
export type Database = PgDatabase<PgQueryResultHKT, Schema>
export type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0]
/** What a repository runs its queries on: the database, or the caller's transaction. */
export type Executor = Database | Transaction

/** Runs raw SQL on one connection; used by the migration runner. */
export type ScriptRunner = (script: string) => Promise<{ rows: unknown[] }>

export interface PoolStats {
  total: number
  idle: number
  waiting: number
}

export interface DatabaseHandle {
  kind: 'embedded' | 'postgres'
  db: Database
  /** Runs `work` on one connection inside one transaction: all of it commits, or none. */
  withScriptTransaction<T>(work: (run: ScriptRunner) => Promise<T>): Promise<T>
  ping(): Promise<void>
  poolStats(): PoolStats
  close(): Promise<void>
}

/** Wraps each SQL statement, e.g. in a tracing span; `run` sends it. */
export type QueryTracer = <T>(sql: string, run: () => Promise<T>) => Promise<T>

export interface PostgresOptions {
  url: string
  poolMax: number
  connectTimeoutMs: number
  statementTimeoutMs: number
  traceQuery?: QueryTracer
}

export function createPostgresDatabase(options: PostgresOptions): DatabaseHandle {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax,
    // Without a connection timeout a request waits forever when Postgres is down.
    connectionTimeoutMillis: options.connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs || undefined,
    idleTimeoutMillis: 30_000,
    application_name: 'orderflow',
  })
  // An idle client that loses its server emits here; without a listener the process dies.
  pool.on('error', () => {})
  // A client checked out of the pool (a query, a transaction) is not covered by the pool's
  // listener: a server that goes away under it would raise an unhandled 'error' and end the
  // process. The query in flight fails by itself, and the pool discards the broken client
  // when it is released, so there is nothing more to do here.
  pool.on('connect', (client) => {
    client.on('error', () => {})
    if (options.traceQuery) traceClient(client, options.traceQuery)
  })
  const db = drizzleNodePg({ client: pool, schema }) as unknown as Database
  db.transaction = releasingTransaction(pool)

  return {
    kind: 'postgres',
    db,
    async withScriptTransaction(work) {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        const result = await work(async (script) => {
          const answer = await client.query(script)
          // A multi-statement script answers with one result per statement.
          const last = Array.isArray(answer) ? answer.at(-1) : answer
          return { rows: last?.rows ?? [] }
        })
        await client.query('COMMIT')
        return result
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {})
        throw error
      } finally {
        client.release()
      }
    },
    async ping() {
      await db.execute(sql`select 1`)
    },
    poolStats: () => ({
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
    }),
    close: () => pool.end(),
  }
}

/**
 * Every statement runs through `client.query`, whether Drizzle sends it through the pool or on
 * a transaction's client, so wrapping each connection's `query` sees them all once. The pool
 * calls it with a callback, Drizzle without: both forms are kept.
 */
function traceClient(client: pg.PoolClient, tracer: QueryTracer): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  client.query = ((...args: unknown[]) => {
    const first = args[0] as string | { text?: string; submit?: unknown }
    // A Submittable (a cursor, a COPY stream) is not a statement with a promise to wait on.
    if (typeof first === 'object' && typeof first?.submit === 'function') return query(...args)
    const sql = typeof first === 'string' ? first : (first?.text ?? '')
    const callback = args.at(-1)
    if (typeof callback === 'function') {
      const rest = args.slice(0, -1)
      void tracer(
        sql,
        () =>
          new Promise((resolve, reject) => {
            query(...rest, (error: Error | null, result: unknown) => {
              callback(error, result)
              if (error) reject(error)
              else resolve(result)
            })
          }),
      ).catch(() => {})
      return undefined
    }
    return tracer(sql, () => query(...args) as Promise<unknown>)
  }) as typeof client.query
}

/**
 * `db.transaction` over the pool, with the connection always given back. Drizzle's own checks
 * a client out and sends BEGIN before its try/finally, so a BEGIN that fails (the server went
 * away between checkout and BEGIN) never releases the client: each outage would shrink the
 * pool by one for good, and `pool.end()` at shutdown would wait forever. Here the checkout
 * and the release bracket the whole transaction, run by a Drizzle handle over that one
 * client (kept per client, so it is built once per connection, not per transaction).
 */
function releasingTransaction(pool: pg.Pool): Database['transaction'] {
  const handles = new WeakMap<pg.PoolClient, Database>()
  return async (work, config) => {
    const client = await pool.connect()
    try {
      let handle = handles.get(client)
      if (!handle) {
        handle = drizzleNodePg({ client, schema }) as unknown as Database
        handles.set(client, handle)
      }
      return await handle.transaction(work, config)
    } finally {
      // A client whose connection broke is not queryable any more, and the pool drops it.
      client.release()
    }
  }
}

export interface EmbeddedOptions {
  /** A directory for persistent data; omit for an in-memory database. */
  dataDir?: string
  /** A data directory dump (from `dumpDataDir`) to start from, e.g. a migrated template. */
  loadDataDir?: Blob
  traceQuery?: QueryTracer
}

export interface EmbeddedDatabaseHandle extends DatabaseHandle {
  /** A tarball of the data directory, loadable through `EmbeddedOptions.loadDataDir`. */
  dumpDataDir(): Promise<Blob>
}

export async function createEmbeddedDatabase(
  options: EmbeddedOptions = {},
): Promise<EmbeddedDatabaseHandle> {
  const dataDir = options.dataDir ? resolve(options.dataDir) : undefined
  if (dataDir) mkdirSync(dataDir, { recursive: true })
  // PGlite is one process's private copy of Postgres: a second process writing the same
  // files would corrupt them or lose its writes, so the directory is locked before opening.
  const lock = dataDir ? lockDataDir(dataDir) : undefined
  let client: PGliteThread
  try {
    client = await PGliteThread.open({
      dataDir,
      loadDataDir: options.loadDataDir ? await options.loadDataDir.arrayBuffer() : undefined,
    })
  } catch (error) {
    lock?.release()
    throw error
  }
  if (options.traceQuery) traceThread(client, options.traceQuery)
  // Drizzle's PGlite driver needs only `query` and `transaction`, which the thread answers.
  const db = drizzlePglite({ client: client as unknown as PGlite, schema }) as unknown as Database

  return {
    kind: 'embedded',
    db,
    withScriptTransaction: (work) =>
      client.transaction((tx) =>
        work(async (script) => {
          const results = await tx.exec(script)
          return { rows: results.at(-1)?.rows ?? [] }
        }),
      ),
    async ping() {
      await client.query('select 1')
    },
    // PGlite is one connection: it is always there, and statements queue on its thread.
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    async close() {
      try {
        await client.close()
      } finally {
        lock?.release()
      }
    },
    dumpDataDir: () => client.dumpDataDir(),
  }
}

/** The thread's statements, outside and inside transactions, through `tracer`. */
function traceThread(thread: PGliteThread, tracer: QueryTracer): void {
  const query = thread.query.bind(thread)
  thread.query = (sql, params, options) => tracer(sql, () => query(sql, params, options))
  const transaction = thread.transaction.bind(thread)
  thread.transaction = (work) =>
    transaction((tx) => {
      // Inherits from `tx` rather than copying it, so its `closed` getter stays live.
      const traced: PGliteThreadTransaction = Object.create(tx)
      traced.query = (sql, params, options) => tracer(sql, () => tx.query(sql, params, options))
      return work(traced)
    })
}

export interface DatabaseSettings extends Omit<PostgresOptions, 'url'> {
  url?: string
  dataDir: string
}

/** PostgreSQL when a URL is configured, else PGlite persisted under the data directory. */
export function openDatabase(settings: DatabaseSettings): Promise<DatabaseHandle> {
  if (settings.url)
    return Promise.resolve(createPostgresDatabase({ ...settings, url: settings.url }))
  return createEmbeddedDatabase({
    dataDir: resolve(settings.dataDir, 'pgdata'),
    traceQuery: settings.traceQuery,
  })
}

/** Runs `work` in one transaction; services receive this rather than the database itself. */
export type InTransaction = <T>(work: (tx: Transaction) => Promise<T>) => Promise<T>

/**
 * Work a caller hands a service to run inside the service's own transaction, after the
 * change and with its result, so that both commit or neither does. The idempotency guard
 * marks its key as committed this way, without the service knowing about HTTP.
 */
export type TransactionHook<T> = (tx: Transaction, result: T) => Promise<void>

export function inTransaction(db: Database): InTransaction {
  return (work) => db.transaction(work)
}
