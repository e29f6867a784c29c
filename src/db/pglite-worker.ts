import { parentPort, workerData } from 'node:worker_threads'
import { Mutex, PGlite, TransactionAbortedError } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import {
  EMBEDDED_SHARED_BUFFERS_MB,
  type FromWorker,
  type ToWorker,
  toWireError,
  type WireQueryOptions,
  type WorkerInit,
} from './pglite-protocol.js'
import { PreparedStatements, type RowOptions } from './pglite-statements.js'
import {
  analyzeStaleTables,
  STATISTICS_CHECK_INTERVAL_MS,
  STATISTICS_FIRST_CHECK_MS,
} from './pglite-statistics.js'

/**
 * The thread that owns PGlite. Postgres compiled to WebAssembly runs every statement
 * synchronously on the thread that calls it, so here it stalls nobody but this thread;
 * the main thread only posts SQL and parameters and gets rows back.
 */

if (!parentPort) throw new Error('pglite-worker runs as a worker thread only')
const port = parentPort
const init = workerData as WorkerInit

/**
 * PGlite is one connection. A statement outside a transaction holds it for its own run; a
 * transaction holds it from BEGIN to COMMIT or ROLLBACK, so nothing else runs in between.
 * Both queue in the order their messages arrive (the mutex is first come, first served).
 */
const connection = new Mutex()

interface OpenTransaction {
  /** The transaction's own statements, one at a time in the order they arrived. */
  statements: Mutex
  release: () => void
}

const transactions = new Map<number, OpenTransaction>()
let nextTransaction = 1

const post = (message: FromWorker, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer)

/**
 * How a query's rows are decoded: PGlite's parsers, but Postgres' text for the types asked
 * raw. Built once per distinct request (Drizzle's PGlite driver asks for one set), since
 * PGlite otherwise merges the parsers again for every statement.
 */
function rowOptions(client: PGlite, cache: Map<string, RowOptions>, wire: WireQueryOptions) {
  const key = `${wire.rowMode}:${wire.rawTypes?.join(',')}`
  let options = cache.get(key)
  if (!options) {
    const parsers = { ...client.parsers }
    for (const oid of wire.rawTypes ?? []) parsers[oid] = (value: string) => value
    options = { rowMode: wire.rowMode, parsers }
    cache.set(key, options)
  }
  return options
}

/** Starts a transaction once the connection is free; it holds it until it ends. */
async function begin(statements: PreparedStatements): Promise<number> {
  const release = await connection.acquire()
  try {
    await statements.script('BEGIN')
  } catch (error) {
    release()
    throw error
  }
  const id = nextTransaction++
  transactions.set(id, { statements: new Mutex(), release })
  return id
}

/** Commits or rolls back after the transaction's statements that arrived before. */
function end(statements: PreparedStatements, tx: number, commit: boolean): Promise<void> {
  const open = transactions.get(tx)
  if (!open) return Promise.reject(new Error('Transaction is closed'))
  transactions.delete(tx)
  return open.statements.runExclusive(async () => {
    try {
      const [result] = await statements.script(commit ? 'COMMIT' : 'ROLLBACK')
      // As PGlite's own transaction(): a COMMIT that rolled back (the transaction had
      // failed) is an error, not a success.
      if (commit && result?.command === 'ROLLBACK') {
        throw Object.assign(new TransactionAbortedError(), { query: 'COMMIT' })
      }
    } finally {
      open.release()
    }
  })
}

function serve(client: PGlite) {
  const statements = new PreparedStatements(client, init.preparedStatementsMax)
  const rowOptionsCache = new Map<string, RowOptions>()
  // Each ANALYZE takes the connection on its own, so statements queue between tables.
  const analyze = () =>
    analyzeStaleTables((sql) => connection.runExclusive(() => statements.script(sql)))
  const stopStatistics = keepStatistics(analyze)

  const run = async (message: ToWorker): Promise<unknown> => {
    switch (message.kind) {
      case 'query':
        return statements.query(
          message.sql,
          message.params,
          rowOptions(client, rowOptionsCache, message.options),
        )
      case 'exec':
        return statements.script(message.sql)
      case 'copy':
        await client.query(message.sql, [], { blob: new Blob([message.data]) })
        return null
      case 'dump':
        return (await client.dumpDataDir('none')).arrayBuffer()
      case 'close':
        stopStatistics()
        return client.close()
      default:
        throw new Error(`${message.kind} is not a statement`)
    }
  }

  /** Queues the message where it belongs: in its transaction, or for the connection. */
  const schedule = (message: ToWorker): Promise<unknown> => {
    switch (message.kind) {
      case 'begin':
        return begin(statements)
      case 'commit':
      case 'rollback':
        return end(statements, message.tx, message.kind === 'commit')
      case 'analyze':
        return analyze()
    }
    const tx = 'tx' in message ? message.tx : undefined
    if (tx === undefined) return connection.runExclusive(() => run(message))
    const open = transactions.get(tx)
    if (!open) return Promise.reject(new Error('Transaction is closed'))
    return open.statements.runExclusive(() => run(message))
  }

  port.on('message', (message: ToWorker) => {
    schedule(message).then(
      (value) => {
        const transfer = value instanceof ArrayBuffer ? [value] : []
        post({ kind: 'answer', id: message.id, value }, transfer)
      },
      (error) => post({ kind: 'failed', id: message.id, error: toWireError(error) }),
    )
  })
}

/**
 * Analyzes stale tables a while after the thread opens (out of start-up's way), then at an
 * interval, one check at a time; answers a function that stops it. PGlite has no
 * autovacuum to do it (pglite-statistics.ts).
 */
function keepStatistics(analyze: () => Promise<unknown>): () => void {
  const every = init.statisticsCheckIntervalMs ?? STATISTICS_CHECK_INTERVAL_MS
  if (every <= 0) return () => {}
  let checking = false
  const check = () => {
    if (checking) return
    checking = true
    // Statistics only steer plans: a failed check (the database closing under it) changes
    // no answer, and the next one tries again.
    analyze()
      .catch(() => {})
      .finally(() => {
        checking = false
      })
  }
  let interval: NodeJS.Timeout | undefined
  const first = setTimeout(
    () => {
      check()
      interval = setInterval(check, every)
    },
    Math.min(STATISTICS_FIRST_CHECK_MS, every),
  )
  return () => {
    clearTimeout(first)
    clearInterval(interval)
  }
}

async function main() {
  let client: PGlite
  try {
    client = await PGlite.create({
      dataDir: init.dataDir,
      loadDataDir: init.loadDataDir ? new Blob([init.loadDataDir]) : undefined,
      extensions: { pg_trgm },
      startParams: [
        ...PGlite.defaultStartParams,
        // initdb writes 128MB, and PGlite touches every page of its shared memory at start:
        // 128 MB of resident memory for a cache that the OS page cache under PGlite's files
        // duplicates anyway. One backend, no parallel workers: a few MB keep the hot pages.
        '-c',
        `shared_buffers=${init.sharedBuffersMb ?? EMBEDDED_SHARED_BUFFERS_MB}MB`,
        // The worker runs every statement as a named prepared statement. PostgreSQL's default
        // (auto) plans one again at every execution while its generic plan costs more than
        // the plans made for the values, and a LIMIT $n always does (the generic plan reads
        // 10 % of the rows): the order page was planned again at every request, 0.9 of its
        // 2.3 ms on this thread, with an fstat of every table and index it could use. Plans
        // made once rest on the tables' statistics, which keepStatistics keeps.
        '-c',
        'plan_cache_mode=force_generic_plan',
      ],
    })
  } catch (error) {
    post({ kind: 'open_failed', error: toWireError(error) })
    return
  }
  serve(client)
  post({ kind: 'ready' })
}

void main()
