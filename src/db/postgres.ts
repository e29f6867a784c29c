import { sql } from 'drizzle-orm'
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import type { Database, DatabaseHandle, PostgresOptions, QueryTracer } from './client.js'
import * as schema from './schema/index.js'

/** PostgreSQL through a node-postgres pool: server mode. */
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
