import { parentPort, workerData } from 'node:worker_threads'
import { PGlite, type QueryOptions, type Transaction } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import {
  EMBEDDED_SHARED_BUFFERS_MB,
  type FromWorker,
  type ToWorker,
  toWireError,
  type WorkerInit,
} from './pglite-protocol.js'

/**
 * The thread that owns PGlite. Postgres compiled to WebAssembly runs every statement
 * synchronously on the thread that calls it, so here it stalls nobody but this thread;
 * the main thread only posts SQL and parameters and gets rows back.
 */

if (!parentPort) throw new Error('pglite-worker runs as a worker thread only')
const port = parentPort
const init = workerData as WorkerInit

interface OpenTransaction {
  tx: Transaction
  decide: (commit: boolean) => void
  finished: Promise<void>
}

/** Thrown inside PGlite's transaction callback to make it roll back. */
const ROLL_BACK = Symbol('roll back')
const transactions = new Map<number, OpenTransaction>()
let nextTransaction = 1

const post = (message: FromWorker, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer)

function options(wire: { rowMode?: 'array' | 'object'; rawTypes?: number[] }): QueryOptions {
  const parsers: NonNullable<QueryOptions['parsers']> = {}
  for (const oid of wire.rawTypes ?? []) parsers[oid] = (value: string) => value
  return { rowMode: wire.rowMode, parsers }
}

function executor(client: PGlite, tx: number | undefined): PGlite | Transaction {
  if (tx === undefined) return client
  const open = transactions.get(tx)
  if (!open) throw new Error('Transaction is closed')
  return open.tx
}

/** Starts a transaction and answers once BEGIN ran; it stays open until commit or rollback. */
function begin(client: PGlite, id: number) {
  const txId = nextTransaction++
  let begun = false
  const finished = client.transaction(async (tx) => {
    const decision = new Promise<boolean>((decide) => {
      transactions.set(txId, { tx, decide, finished })
    })
    begun = true
    post({ kind: 'answer', id, value: txId })
    if (!(await decision)) throw ROLL_BACK
  })
  finished
    .catch((error) => {
      if (!begun) post({ kind: 'failed', id, error: toWireError(error) })
    })
    .finally(() => transactions.delete(txId))
}

async function settle(tx: number, commit: boolean): Promise<void> {
  const open = transactions.get(tx)
  if (!open) throw new Error('Transaction is closed')
  open.decide(commit)
  try {
    await open.finished
  } catch (error) {
    if (error !== ROLL_BACK) throw error
  }
}

async function answer(client: PGlite, message: ToWorker): Promise<unknown> {
  switch (message.kind) {
    case 'query':
      return executor(client, message.tx).query(
        message.sql,
        message.params,
        options(message.options),
      )
    case 'exec':
      return executor(client, message.tx).exec(message.sql)
    case 'copy':
      await client.query(message.sql, [], { blob: new Blob([message.data]) })
      return null
    case 'commit':
      return settle(message.tx, true)
    case 'rollback':
      return settle(message.tx, false)
    case 'dump':
      return (await client.dumpDataDir('none')).arrayBuffer()
    case 'close':
      return client.close()
    case 'begin':
      throw new Error('begin is answered from inside its transaction')
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
      ],
    })
  } catch (error) {
    post({ kind: 'open_failed', error: toWireError(error) })
    return
  }
  port.on('message', (message: ToWorker) => {
    if (message.kind === 'begin') return begin(client, message.id)
    answer(client, message).then(
      (value) => {
        const transfer = value instanceof ArrayBuffer ? [value] : []
        post({ kind: 'answer', id: message.id, value }, transfer)
      },
      (error) => post({ kind: 'failed', id: message.id, error: toWireError(error) }),
    )
  })
  post({ kind: 'ready' })
}

void main()
