import type { Worker } from 'node:worker_threads'
import type { QueryOptions, Results } from '@electric-sql/pglite'
import { startThread } from '../shared/project-files.js'
import {
  type FromWorker,
  fromWireError,
  type ToWorker,
  type WireQueryOptions,
  type WorkerInit,
} from './pglite-protocol.js'

/** What Drizzle's PGlite driver calls on a transaction (PGlite's `Transaction`, in part). */
export interface PGliteThreadTransaction {
  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>
  exec(sql: string): Promise<Results[]>
  readonly closed: boolean
}

/** Distributes the message's own union over its kinds, so each keeps its fields. */
type Request = ToWorker extends infer M ? (M extends ToWorker ? Omit<M, 'id'> : never) : never

/**
 * PGlite run on a worker thread, behind the part of PGlite's interface that Drizzle's PGlite
 * driver uses (`query`, `transaction`), so `drizzle-orm/pglite` works on it unchanged. A
 * statement still runs one at a time, in the same order as in-process PGlite would run it
 * (the worker serialises them, transactions included), but no longer on the event loop:
 * other requests parse, authenticate and serialise while the database works. The worker
 * runs each as a named prepared statement (pglite-statements.ts).
 * Written here because no published driver does this for Node: PGlite's own worker is for
 * browsers, and drizzle's pg-proxy driver has no transactions.
 */
export class PGliteThread {
  readonly #worker: Worker
  readonly #pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >()
  #nextId = 1
  /** Set once the worker is gone: every later call fails with it. */
  #gone: Error | undefined

  private constructor(worker: Worker) {
    this.#worker = worker
    worker.on('message', (message: FromWorker) => {
      if (message.kind !== 'answer' && message.kind !== 'failed') return
      const pending = this.#pending.get(message.id)
      if (!pending) return
      this.#settled(message.id)
      if (message.kind === 'answer') pending.resolve(message.value)
      else pending.reject(fromWireError(message.error))
    })
    const lost = (cause: unknown) => this.#lose(cause)
    worker.on('error', lost)
    worker.on('exit', (code) => lost(new Error(`the database thread exited with code ${code}`)))
  }

  /** Starts the worker and waits until its PGlite is open (or failed to open). */
  static async open(init: WorkerInit): Promise<PGliteThread> {
    const worker = startWorker(init)
    const listeners = {
      message: (_message: FromWorker) => {},
      error: (_error: Error) => {},
      exit: (_code: number) => {},
    }
    const first = await new Promise<FromWorker>((resolve, reject) => {
      listeners.message = resolve
      listeners.error = reject
      listeners.exit = (code) => reject(new Error(`the database thread exited with code ${code}`))
      worker.once('message', listeners.message)
      worker.once('error', listeners.error)
      worker.once('exit', listeners.exit)
    })
      .catch(async (error) => {
        await worker.terminate()
        throw error
      })
      .finally(() => {
        // Only these: removeAllListeners would also drop the Worker's own internal listeners.
        worker.off('message', listeners.message)
        worker.off('error', listeners.error)
        worker.off('exit', listeners.exit)
      })
    if (first.kind !== 'ready') {
      await worker.terminate()
      throw first.kind === 'open_failed'
        ? fromWireError(first.error)
        : new Error(`The database thread answered ${first.kind} before opening.`)
    }
    // Idle, the thread must not keep a process alive that has nothing else to do.
    worker.unref()
    return new PGliteThread(worker)
  }

  query<T>(sql: string, params: unknown[] = [], options?: QueryOptions): Promise<Results<T>> {
    return this.#send({ kind: 'query', sql, params, options: wireOptions(options) }) as Promise<
      Results<T>
    >
  }

  exec(sql: string): Promise<Results[]> {
    return this.#send({ kind: 'exec', sql }) as Promise<Results[]>
  }

  /**
   * Runs `work` in one transaction held open on the worker: its statements carry the
   * transaction's id, and everything else waits behind it there, as in PGlite's own.
   */
  async transaction<T>(work: (tx: PGliteThreadTransaction) => Promise<T>): Promise<T> {
    const id = (await this.#send({ kind: 'begin' })) as number
    let closed = false
    const tx: PGliteThreadTransaction = {
      query: (sql, params = [], options) => {
        if (closed) return Promise.reject(new Error('Transaction is closed'))
        return this.#send({
          kind: 'query',
          sql,
          params,
          options: wireOptions(options),
          tx: id,
        }) as never
      },
      exec: (sql) => {
        if (closed) return Promise.reject(new Error('Transaction is closed'))
        return this.#send({ kind: 'exec', sql, tx: id }) as never
      },
      get closed() {
        return closed
      },
    }
    let result: T
    try {
      result = await work(tx)
    } catch (error) {
      closed = true
      await this.#send({ kind: 'rollback', tx: id }).catch(() => {})
      throw error
    }
    closed = true
    await this.#send({ kind: 'commit', tx: id })
    return result
  }

  /**
   * Runs `COPY <table> FROM '/dev/blob' ...` over `data`, which moves to the database thread
   * (the caller's buffer is emptied): PGlite's fastest way in for many rows.
   */
  async copyFrom(sql: string, data: Uint8Array): Promise<void> {
    await this.#send({ kind: 'copy', sql, data }, [data.buffer as ArrayBuffer])
  }

  /**
   * Analyzes the tables whose planner statistics are missing or stale now, as the thread
   * also does by itself at an interval (pglite-statistics.ts); answers the tables analyzed.
   */
  analyzeStaleTables(): Promise<string[]> {
    return this.#send({ kind: 'analyze' }) as Promise<string[]>
  }

  async dumpDataDir(): Promise<Blob> {
    return new Blob([(await this.#send({ kind: 'dump' })) as ArrayBuffer])
  }

  async close(): Promise<void> {
    if (this.#gone) return
    try {
      await this.#send({ kind: 'close' })
    } finally {
      // As PGlite's own: after close() a call is a programming error (500), not an outage.
      this.#gone = new Error('The embedded database is closed.')
      await this.#worker.terminate()
    }
  }

  #send(request: Request, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.#gone) return Promise.reject(this.#gone)
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      // A query in flight must keep the process alive until its answer arrives.
      if (this.#pending.size === 0) this.#worker.ref()
      this.#pending.set(id, { resolve, reject })
      this.#worker.postMessage({ ...request, id } satisfies ToWorker, transfer)
    })
  }

  #settled(id: number) {
    this.#pending.delete(id)
    if (this.#pending.size === 0) this.#worker.unref()
  }

  /** The worker ended: closed by us (`#gone` already set), or died under us. */
  #lose(cause: unknown) {
    // 57P02, crash shutdown: what PostgreSQL answers when its server dies under a query, so
    // callers treat it as the database being unavailable (503), not as a refused query.
    this.#gone ??= Object.assign(new Error('The embedded database thread stopped.', { cause }), {
      code: '57P02',
    })
    for (const [id, pending] of this.#pending) {
      this.#settled(id)
      pending.reject(this.#gone)
    }
  }
}

function wireOptions(options: QueryOptions | undefined): WireQueryOptions {
  if (!options) return {}
  return {
    rowMode: options.rowMode,
    rawTypes: options.parsers ? Object.keys(options.parsers).map(Number) : undefined,
  }
}

function startWorker(init: WorkerInit): Worker {
  const transferList = init.loadDataDir ? [init.loadDataDir] : []
  return startThread('db/pglite-worker', { workerData: init, transferList })
}
