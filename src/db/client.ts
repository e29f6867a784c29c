import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
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

export interface EmbeddedOptions {
  /** A directory for persistent data; omit for an in-memory database. */
  dataDir?: string
  /** A data directory dump (from `dumpDataDir`) to start from, e.g. a migrated template. */
  loadDataDir?: Blob
  /** PostgreSQL's shared_buffers in MB; EMBEDDED_SHARED_BUFFERS_MB's default when unset. */
  sharedBuffersMb?: number
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
  // Imported here, not at the top: Drizzle's PGlite driver loads PGlite's own module (about
  // 0.5 MB of JavaScript), which a server-mode process never uses. It loads while the thread
  // starts, so an embedded start does not wait for it.
  const driver = import('drizzle-orm/pglite')
  driver.catch(() => {})
  let client: PGliteThread
  try {
    client = await PGliteThread.open({
      dataDir,
      loadDataDir: options.loadDataDir ? await options.loadDataDir.arrayBuffer() : undefined,
      sharedBuffersMb: options.sharedBuffersMb,
    })
  } catch (error) {
    lock?.release()
    throw error
  }
  if (options.traceQuery) traceThread(client, options.traceQuery)
  // Drizzle's PGlite driver needs only `query` and `transaction`, which the thread answers.
  const { drizzle } = await driver
  const db = drizzle({ client: client as unknown as PGlite, schema }) as unknown as Database

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
  /** Embedded mode only. */
  sharedBuffersMb?: number
}

/** PostgreSQL when a URL is configured, else PGlite persisted under the data directory. */
export function openDatabase(settings: DatabaseSettings): Promise<DatabaseHandle> {
  // Loaded only in server mode: node-postgres is not needed by an embedded process, and
  // importing it (with its Drizzle driver) was a measurable part of embedded start-up.
  if (settings.url) {
    const url = settings.url
    return import('./postgres.js').then((postgres) =>
      postgres.createPostgresDatabase({ ...settings, url }),
    )
  }
  return createEmbeddedDatabase({
    dataDir: resolve(settings.dataDir, 'pgdata'),
    sharedBuffersMb: settings.sharedBuffersMb,
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
