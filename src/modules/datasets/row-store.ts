import { sql } from 'drizzle-orm'
import type pg from 'pg'
import type { DatabaseHandle, Executor } from '../../db/client.js'
import {
  type ColumnStats,
  type DatasetColumn,
  quoteIdent,
  SQL_TYPES,
  type StoredValue,
} from './columns.js'
import {
  columnStats,
  distinctQuery,
  EXACT_DISTINCT_MAX,
  type RowSketches,
  summaryQuery,
} from './stats.js'

/**
 * The typed table holding one dataset's rows, in the `datasets` schema. Its name derives
 * from the dataset id alone, so a re-run import finds (and rebuilds) the same table; `_row`
 * is the record's position, the default order and the cursor's tie-breaker.
 */
export function rowsTable(datasetId: string): string {
  if (!/^[0-9a-f-]{36}$/.test(datasetId)) throw new Error('A dataset id is a UUID.')
  return `datasets.${quoteIdent(`rows_${datasetId.replaceAll('-', '')}`)}`
}

/**
 * Writes rows into a new rows table; `close` waits until they are all stored (and in server
 * mode committed, the table with them).
 */
export interface RowSink {
  /**
   * Encodes the row at once (the caller may reuse the array); `asWritten`: the row as one
   * line of COPY's CSV already, the source's own UTF-8 bytes one character per byte (a
   * `latin1` string, as the CSV reader gives them), copied instead of the values.
   */
  write(row: readonly StoredValue[], asWritten?: string): Promise<void> | undefined
  close(): Promise<void>
  /** Stops without storing what is pending; the caller drops the table, if any is left. */
  abort(): Promise<void>
}

/** The raw clients behind Drizzle, for what it does not do: COPY. */
interface RawClient {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>
}

/** The one row of a query whose values are all text, in the order they were selected. */
async function figuresOf(client: RawClient, query: string): Promise<(string | null)[]> {
  const { rows } = await client.query(query)
  return Object.values(rows[0] as Record<string, string | null>)
}

/** The rows table, made anew: a re-run import replaces what its failed run left. */
function createStatements(datasetId: string, columns: readonly DatasetColumn[]): string[] {
  const table = rowsTable(datasetId)
  const definitions = columns.map((c) => `${quoteIdent(c.sql_name)} ${SQL_TYPES[c.type]}`)
  return [
    `DROP TABLE IF EXISTS ${table}`,
    `CREATE TABLE ${table} (_row bigint NOT NULL, ${definitions.join(', ')})`,
  ]
}

/**
 * Estimates near the limit are counted exactly too: the sketch's error (about 1.6 %) must not
 * turn a column of 9,900 values into an estimate.
 */
const EXACT_DISTINCT_BELOW_ESTIMATE = EXACT_DISTINCT_MAX * 1.1

export function createRowStore(database: DatabaseHandle) {
  const client = (database.db as unknown as { $client: RawClient }).$client

  /**
   * Creates the rows table (a re-run import replaces the one its failed run left) and opens a
   * COPY into it. In server mode the table is created in the COPY's own transaction, which
   * `close` commits: a failed load leaves no table behind, and the rows are written frozen
   * (`COPY ... FREEZE`), so the scans after the load need not set each row's hint bits and
   * dirty every page again (the index build and the summary scan took a third longer).
   * PGlite loads in several COPY statements, each its own transaction.
   */
  async function openSink(datasetId: string, columns: readonly DatasetColumn[]): Promise<RowSink> {
    if (database.kind === 'postgres') {
      return openCopySink(client as unknown as pg.Pool, datasetId, columns)
    }
    for (const statement of createStatements(datasetId, columns)) await client.query(statement)
    return openBlobCopySink(client as unknown as BlobCopier, datasetId, columns)
  }

  /**
   * Indexes and summarises a loaded table, as one step: the primary key comes after the load
   * (one index build instead of one insert per row), and each column's statistics are
   * computed in the database: one scan for counts, bounds and means, and one for the exact
   * distinct counts of the columns whose sketch saw few values; the others keep the sketch's
   * estimate. On a pool they run side by side, on connections of their own: the index is
   * built by `CREATE UNIQUE INDEX`, whose lock lets the scans read on (an `ADD PRIMARY KEY`
   * would have made them wait), and then made the primary key, which only waits for the
   * scans to end. One after the other they were most of the wait after a load. The planner's
   * statistics follow (see `analyse`).
   */
  async function finishTable(
    datasetId: string,
    columns: readonly DatasetColumn[],
    sketches: RowSketches,
  ): Promise<ColumnStats[]> {
    const table = rowsTable(datasetId)
    const key = quoteIdent(`rows_${datasetId.replaceAll('-', '')}_pkey`)
    const estimates = sketches.estimates()
    const few = columns.filter((_, i) => {
      const estimate = estimates[i] ?? null
      return estimate === null || estimate <= EXACT_DISTINCT_BELOW_ESTIMATE
    })
    const indexed = (async () => {
      await client.query(`CREATE UNIQUE INDEX ${key} ON ${table} (_row)`)
      await client.query(
        `ALTER TABLE ${table} ADD CONSTRAINT ${key} PRIMARY KEY USING INDEX ${key}`,
      )
    })()
    const [figures, exact] = await Promise.all([
      figuresOf(client, summaryQuery(table, columns)),
      exactCounts(table, few),
      indexed,
    ])
    analyse(table)
    return columns.map((column, i) => {
      const k = few.indexOf(column)
      const distinct =
        k === -1
          ? { count: estimates[i] as number, exact: false }
          : { count: Number(exact[k]), exact: true }
      return columnStats(column, figures, 1 + 4 * i, distinct)
    })
  }

  /**
   * The exact distinct counts of `few`, in their order. On a pool, in two queries side by side
   * when there are several columns: one query grouping by every column was the longest
   * statement after a load, and PostgreSQL does not run a grouping-sets query in parallel.
   */
  async function exactCounts(table: string, few: readonly DatasetColumn[]) {
    if (few.length === 0) return []
    if (database.kind !== 'postgres' || few.length === 1) {
      return figuresOf(client, distinctQuery(table, few))
    }
    const half = Math.ceil(few.length / 2)
    const parts = await Promise.all([
      figuresOf(client, distinctQuery(table, few.slice(0, half))),
      figuresOf(client, distinctQuery(table, few.slice(half))),
    ])
    return parts.flat()
  }

  /**
   * The planner's statistics for a new table, gathered once the import has answered rather
   * than before: its rows are complete and readable already, and ANALYZE (a sample of 30,000
   * rows, read from every part of the table) was a fifth of the wait after a load. Not waited
   * for, so a failure is only a missed refresh: the table may have been dropped meanwhile or
   * the pool closed, and autovacuum (in embedded mode, `pglite-statistics.ts`) analyzes a
   * table it finds without statistics anyway.
   */
  function analyse(table: string) {
    client.query(`ANALYZE ${table}`).catch(() => {})
  }

  async function dropTable(datasetId: string, executor?: Executor) {
    const statement = `DROP TABLE IF EXISTS ${rowsTable(datasetId)}`
    if (executor) await executor.execute(sql.raw(statement))
    else await client.query(statement)
  }

  return { openSink, finishTable, dropTable }
}

export type RowStore = ReturnType<typeof createRowStore>

/** Bytes handed to one embedded COPY: large enough that a statement's cost is spread thin. */
const BLOB_COPY_BYTES = 8 * 1024 * 1024
/** Bytes per write to a server-mode COPY stream. */
const COPY_CHUNK_BYTES = 256 * 1024

/** The embedded database thread's COPY entry (see src/db/pglite-thread.ts). */
interface BlobCopier {
  copyFrom(sql: string, data: Uint8Array): Promise<void>
}

/**
 * Embedded mode: the rows as CSV text, handed to PGlite in pieces of a few MB, each loaded by
 * one `COPY ... FROM '/dev/blob'`, the fastest path PGlite offers (an `INSERT ... SELECT
 * unnest(...)` of bound arrays in 5,000-row batches took about 1.5 times the CPU for the same
 * file). One piece is in the database while the next is built.
 */
function openBlobCopySink(
  client: BlobCopier,
  datasetId: string,
  columns: readonly DatasetColumn[],
): RowSink {
  const names = ['_row', ...columns.map((c) => quoteIdent(c.sql_name))]
  const statement = `COPY ${rowsTable(datasetId)} (${names.join(', ')}) FROM '/dev/blob' WITH (FORMAT csv)`
  let position = 0
  let chunk = new CsvChunk(BLOB_COPY_BYTES)
  let pending: Promise<unknown> = Promise.resolve()

  const flush = async () => {
    const data = chunk.bytes()
    chunk = new CsvChunk(BLOB_COPY_BYTES)
    await pending
    pending = client.copyFrom(statement, data)
    pending.catch(() => {})
  }

  return {
    write(row, asWritten) {
      chunk.add(++position, row, asWritten)
      return chunk.length >= BLOB_COPY_BYTES ? flush() : undefined
    },
    async close() {
      if (chunk.length > 0) await flush()
      await pending
    },
    async abort() {
      await pending.catch(() => {})
    },
  }
}

/**
 * Rows written into bytes as COPY's CSV: its position, then the values, each line encoded
 * as soon as it is built. Keeping the strings until a whole piece was encoded left a tree of
 * small strings per row, which held over 100 MB of heap per 8 MB piece.
 */
class CsvChunk {
  #buffer: Buffer
  length = 0

  constructor(capacity: number) {
    // Above 4 KB allocUnsafe gives a buffer of its own, never a slice of the shared pool,
    // so the embedded sink may move it to the database thread.
    this.#buffer = Buffer.allocUnsafe(Math.max(capacity, 8192) + 65_536)
  }

  add(position: number, row: readonly StoredValue[], asWritten?: string) {
    // Building the line value by value was the larger part of this method and of its garbage
    // (a string per value); a source line COPY reads as the row is copied whole, and without
    // a string of its own: the position's digits, the comma and the line end go in as bytes
    // (`${position},${line}\n` cost three strings a row and a copy of the line to flatten them).
    if (asWritten !== undefined) {
      // The position is at most 16 digits (a row count), then a comma and a line end.
      if (this.length + 18 + asWritten.length > this.#buffer.length)
        this.#grow(18 + asWritten.length)
      const buffer = this.#buffer
      this.length = writeDigits(buffer, this.length, position)
      buffer[this.length++] = COMMA
      // The line is its UTF-8 bytes already, one per character: a copy, where encoding
      // the text as UTF-8 took 1.6 times as long.
      this.length += buffer.write(asWritten, this.length, 'latin1')
      buffer[this.length++] = LINE_FEED
      return
    }
    // One line, encoded at once: a write per value cost a native call per cell, and the
    // line is garbage as soon as it is in the buffer.
    let line = String(position)
    for (const value of row) {
      if (value === null) line += ','
      else if (typeof value === 'number') line += `,${value}`
      // An empty string is quoted so it stays a string, not a null.
      else if (value === '' || NEEDS_QUOTES.test(value)) line += `,"${value.replaceAll('"', '""')}"`
      else line += `,${value}`
    }
    this.#text(`${line}\n`)
  }

  /** The bytes written, in a buffer of their own. */
  bytes(): Uint8Array {
    return new Uint8Array(this.#buffer.buffer, this.#buffer.byteOffset, this.length)
  }

  #text(text: string) {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.length + text.length * 3 > this.#buffer.length) this.#grow(text.length * 3)
    this.length += this.#buffer.write(text, this.length, 'utf8')
  }

  #grow(needed: number) {
    const larger = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.length + needed + 1))
    this.#buffer.copy(larger, 0, 0, this.length)
    this.#buffer = larger
  }
}

const NEEDS_QUOTES = /[",\n\r]/
const COMMA = 44
const LINE_FEED = 10
const ZERO = 48

/** A non-negative integer's decimal digits at `at`; answers the position after them. */
function writeDigits(buffer: Buffer, at: number, value: number): number {
  let digits = 1
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++
  let rest = value
  for (let i = at + digits - 1; i >= at; i--) {
    buffer[i] = ZERO + (rest % 10)
    rest = Math.floor(rest / 10)
  }
  return at + digits
}

/**
 * Until the stream drains or fails. Both listeners go once either fires: a race of two
 * `once()`s left an error listener behind at every wait, one per 256 KB loaded.
 */
function drained(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      stream.off('drain', settle)
      stream.off('error', settle)
      if (error) reject(error)
      else resolve()
    }
    stream.on('drain', settle)
    stream.on('error', settle)
  })
}

async function openCopySink(
  pool: pg.Pool,
  datasetId: string,
  columns: readonly DatasetColumn[],
): Promise<RowSink> {
  // Loaded with the first server-mode import: embedded mode never uses it.
  const { from: copyFrom } = await import('pg-copy-streams')
  const connection = await pool.connect()
  let stream: ReturnType<typeof copyFrom>
  try {
    await connection.query('BEGIN')
    for (const statement of createStatements(datasetId, columns)) await connection.query(statement)
    const names = ['_row', ...columns.map((c) => quoteIdent(c.sql_name))]
    stream = connection.query(
      copyFrom(
        `COPY ${rowsTable(datasetId)} (${names.join(', ')}) FROM STDIN WITH (FORMAT csv, FREEZE)`,
      ),
    )
  } catch (error) {
    // The transaction may be open: the connection is discarded, which rolls it back.
    connection.release(error as Error)
    throw error
  }
  let failure: Error | undefined
  stream.on('error', (error) => {
    failure = error
  })
  let position = 0
  let chunk = new CsvChunk(COPY_CHUNK_BYTES)
  let released = false
  const release = (error?: Error) => {
    if (released) return
    released = true
    connection.release(error)
  }

  const send = async () => {
    if (failure) throw failure
    const bytes = chunk.bytes()
    chunk = new CsvChunk(COPY_CHUNK_BYTES)
    if (!stream.write(bytes)) await drained(stream)
    if (failure) throw failure
  }

  return {
    write(row, asWritten) {
      chunk.add(++position, row, asWritten)
      return chunk.length >= COPY_CHUNK_BYTES ? send() : undefined
    },
    async close() {
      try {
        if (chunk.length > 0) await send()
        stream.end()
        await new Promise<void>((resolve, reject) => {
          if (failure) return reject(failure)
          stream.once('finish', resolve)
          stream.once('error', reject)
        })
        await connection.query('COMMIT')
        release()
      } catch (error) {
        release(error as Error)
        throw error
      }
    },
    async abort() {
      // Destroying the COPY would leave the connection mid-protocol: it is discarded instead,
      // which rolls its transaction back, the table with it.
      release(new Error('COPY aborted'))
      stream.destroy()
    },
  }
}
