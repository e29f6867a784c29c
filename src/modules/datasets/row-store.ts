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
  type DistinctSketch,
  distinctQuery,
  EXACT_DISTINCT_MAX,
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

/** Writes rows into a rows table; `close` waits until they are all stored. */
export interface RowSink {
  /**
   * Encodes the row at once (the caller may reuse the array); `asWritten`: the row as one
   * line of COPY's CSV already, the source's own UTF-8 bytes one character per byte (a
   * `latin1` string, as the CSV reader gives them), copied instead of the values.
   */
  write(row: readonly StoredValue[], asWritten?: string): Promise<void> | undefined
  close(): Promise<void>
  /** Stops without storing what is pending; the caller drops the table. */
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

/**
 * Estimates near the limit are counted exactly too: the sketch's error (about 1.6 %) must not
 * turn a column of 9,900 values into an estimate.
 */
const EXACT_DISTINCT_BELOW_ESTIMATE = EXACT_DISTINCT_MAX * 1.1

export function createRowStore(database: DatabaseHandle) {
  const client = (database.db as unknown as { $client: RawClient }).$client

  async function createTable(datasetId: string, columns: readonly DatasetColumn[]) {
    const table = rowsTable(datasetId)
    const definitions = columns.map((c) => `${quoteIdent(c.sql_name)} ${SQL_TYPES[c.type]}`)
    await client.query(`DROP TABLE IF EXISTS ${table}`)
    await client.query(`CREATE TABLE ${table} (_row bigint NOT NULL, ${definitions.join(', ')})`)
  }

  /** COPY in both modes: FROM STDIN on a pooled connection, or from blobs in PGlite. */
  function openSink(datasetId: string, columns: readonly DatasetColumn[]): Promise<RowSink> {
    return database.kind === 'postgres'
      ? openCopySink(client as unknown as pg.Pool, datasetId, columns)
      : Promise.resolve(openBlobCopySink(client as unknown as BlobCopier, datasetId, columns))
  }

  /**
   * Indexes, analyses and summarises a loaded table, as one step: the primary key comes after
   * the load (one index build instead of one insert per row), and each column's statistics
   * are computed in the database: one scan for counts, bounds and means, and one for the
   * exact distinct counts of the columns whose sketch saw few values; the others keep the
   * sketch's estimate. On a pool the three run side by side, on connections of their own:
   * the index is built by `CREATE UNIQUE INDEX`, whose lock lets the two scans read on (an
   * `ADD PRIMARY KEY` would have made them wait), and then made the primary key, which only
   * waits for the scans to end. One after the other they were most of the wait after a load.
   */
  async function finishTable(
    datasetId: string,
    columns: readonly DatasetColumn[],
    sketches: readonly DistinctSketch[],
  ): Promise<ColumnStats[]> {
    const table = rowsTable(datasetId)
    const key = quoteIdent(`rows_${datasetId.replaceAll('-', '')}_pkey`)
    const estimates = sketches.map((sketch) => sketch.estimate())
    const few = columns.filter((_, i) => (estimates[i] as number) <= EXACT_DISTINCT_BELOW_ESTIMATE)
    const indexed = (async () => {
      await client.query(`CREATE UNIQUE INDEX ${key} ON ${table} (_row)`)
      await client.query(
        `ALTER TABLE ${table} ADD CONSTRAINT ${key} PRIMARY KEY USING INDEX ${key}`,
      )
      await client.query(`ANALYZE ${table}`)
    })()
    const [figures, exact] = await Promise.all([
      figuresOf(client, summaryQuery(table, columns)),
      few.length > 0 ? figuresOf(client, distinctQuery(table, few)) : [],
      indexed,
    ])
    return columns.map((column, i) => {
      const k = few.indexOf(column)
      const distinct =
        k === -1
          ? { count: estimates[i] as number, exact: false }
          : { count: Number(exact[k]), exact: true }
      return columnStats(column, figures, 1 + 4 * i, distinct)
    })
  }

  async function dropTable(datasetId: string, executor?: Executor) {
    const statement = `DROP TABLE IF EXISTS ${rowsTable(datasetId)}`
    if (executor) await executor.execute(sql.raw(statement))
    else await client.query(statement)
  }

  return { createTable, openSink, finishTable, dropTable }
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
  const names = ['_row', ...columns.map((c) => quoteIdent(c.sql_name))]
  const stream = connection.query(
    copyFrom(`COPY ${rowsTable(datasetId)} (${names.join(', ')}) FROM STDIN WITH (FORMAT csv)`),
  )
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
        release()
      } catch (error) {
        release(error as Error)
        throw error
      }
    },
    async abort() {
      // Destroying the COPY would leave the connection mid-protocol: it is discarded instead.
      release(new Error('COPY aborted'))
      stream.destroy()
    },
  }
}
