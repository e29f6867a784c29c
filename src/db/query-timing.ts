import type pg from 'pg'
import type { Database } from './client.js'

/** Where a query's time goes: the current request's counter, or nowhere outside a request. */
export type QueryClock = () => { db: number } | undefined

type Query = (...args: unknown[]) => unknown

/**
 * Adds each query's duration to the current request (Server-Timing's `db`). Installed once,
 * only when Server-Timing is on, by replacing the driver's query methods on this database's
 * own client objects: when it is off nothing is wrapped and queries pay nothing.
 *
 * Server mode: every query runs on a client checked out of the pool (`pool.query` checks one
 * out too), so wrapping each client once as it leaves the pool counts every query once.
 * Embedded mode: one PGlite client; a transaction counts from BEGIN to COMMIT, as its
 * statements queue behind one another on the database thread anyway.
 */
export function timeQueries(db: Database, clock: QueryClock): void {
  const client = (db as unknown as { $client: unknown }).$client
  if (isPool(client)) timePool(client, clock)
  else timeMethods(client as Record<string, Query>, ['query', 'transaction'], clock)
}

function isPool(client: unknown): client is pg.Pool {
  return typeof (client as pg.Pool).connect === 'function' && 'totalCount' in (client as object)
}

function timePool(pool: pg.Pool, clock: QueryClock) {
  const timed = new WeakSet<object>()
  const wrap = (client: pg.PoolClient | undefined) => {
    if (client && !timed.has(client)) {
      timed.add(client)
      timeMethods(client as unknown as Record<string, Query>, ['query'], clock)
    }
    return client
  }
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown
  // pg-pool calls `this.connect(callback)` from `pool.query`, and callers use the promise form.
  pool.connect = ((
    callback?: (error: Error | undefined, client?: pg.PoolClient, done?: unknown) => void,
  ) => {
    if (!callback) return (connect() as Promise<pg.PoolClient>).then(wrap)
    return connect((error: Error | undefined, client?: pg.PoolClient, done?: unknown) =>
      callback(error, wrap(client), done),
    )
  }) as pg.Pool['connect']
}

function timeMethods(target: Record<string, Query>, names: string[], clock: QueryClock) {
  for (const name of names) {
    const original = target[name]
    if (typeof original !== 'function') continue
    const bound = original.bind(target)
    target[name] = (...args: unknown[]) => {
      const times = clock()
      if (!times) return bound(...args)
      const startedAt = performance.now()
      const add = () => {
        times.db += performance.now() - startedAt
      }
      // pg-pool's own `pool.query` calls the client with a callback; everyone else awaits.
      const last = args.length - 1
      const callback = args[last]
      if (typeof callback === 'function') {
        args[last] = (...results: unknown[]) => {
          add()
          return callback(...results)
        }
        return bound(...args)
      }
      const result = bound(...args)
      if (result instanceof Promise) result.then(add, add)
      return result
    }
  }
}
