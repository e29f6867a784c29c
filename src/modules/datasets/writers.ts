import type { ParquetWriter } from 'hyparquet-writer'
import type { BasicType } from 'hyparquet-writer/src/types.js'
import type { ColumnType, DatasetColumn } from './columns.js'

export const DOWNLOAD_FORMATS = ['csv', 'ndjson', 'parquet'] as const
export type DownloadFormat = (typeof DOWNLOAD_FORMATS)[number]

export const CONTENT_TYPES: Record<DownloadFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  ndjson: 'application/x-ndjson',
  parquet: 'application/vnd.apache.parquet',
}

type Rows = AsyncIterable<Record<string, unknown>[]>

/** The rows in the format, produced batch by batch: memory holds one batch of rows. */
export function encodeRows(
  format: DownloadFormat,
  columns: readonly DatasetColumn[],
  batches: Rows,
): AsyncIterable<Uint8Array | string> {
  switch (format) {
    case 'csv':
      return csvChunks(columns, batches)
    case 'ndjson':
      return ndjsonChunks(batches)
    case 'parquet':
      return parquetChunks(columns, batches)
  }
}

// A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
const FORMULA_START = /^[=+\-@\t\r]/

/**
 * A CSV cell, quoted when needed. Text that a spreadsheet would run as a formula gets a
 * leading apostrophe; numbers are written as numbers, so a negative number stays one.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  let text = String(value)
  if (FORMULA_START.test(text)) text = `'${text}`
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

async function* csvChunks(columns: readonly DatasetColumn[], batches: Rows) {
  yield `${columns.map((c) => csvCell(c.name)).join(',')}\r\n`
  for await (const rows of batches) {
    let chunk = ''
    for (const row of rows) chunk += `${columns.map((c) => csvCell(row[c.name])).join(',')}\r\n`
    yield chunk
  }
}

async function* ndjsonChunks(batches: Rows) {
  for await (const rows of batches) {
    let chunk = ''
    for (const row of rows) chunk += `${JSON.stringify(row)}\n`
    yield chunk
  }
}

const PARQUET_TYPES: Record<ColumnType, BasicType> = {
  integer: 'INT64',
  number: 'DOUBLE',
  boolean: 'BOOLEAN',
  string: 'STRING',
  date: 'STRING',
  timestamp: 'TIMESTAMP',
}

function parquetValue(type: ColumnType, value: unknown): unknown {
  if (value === null || value === undefined) return null
  if (type === 'integer') return BigInt(value as number | string)
  if (type === 'timestamp') return new Date(value as string)
  return value
}

/** One row group per batch, flushed as soon as it is encoded. */
async function* parquetChunks(columns: readonly DatasetColumn[], batches: Rows) {
  // Loaded with the first Parquet download: a process that never writes one does without it.
  const { ByteWriter, ParquetWriter, schemaFromColumnData } = await import('hyparquet-writer')
  const parquetSchema = () =>
    schemaFromColumnData({
      columnData: columns.map((c) => ({
        name: c.name,
        type: PARQUET_TYPES[c.type],
        nullable: true,
        data: [],
      })),
    })
  const writer = new ByteWriter()
  const take = () => {
    const bytes = writer.getBytes().slice()
    writer.index = 0
    return bytes
  }
  let parquet: ParquetWriter | undefined
  for await (const rows of batches) {
    const columnData = columns.map((c) => ({
      name: c.name,
      type: PARQUET_TYPES[c.type],
      nullable: true,
      data: rows.map((row) => parquetValue(c.type, row[c.name])),
    }))
    if (!parquet) {
      parquet = new ParquetWriter({ writer, schema: parquetSchema() })
    }
    await parquet.write({ columnData, rowGroupSize: rows.length })
    yield take()
  }
  if (!parquet) parquet = new ParquetWriter({ writer, schema: parquetSchema() })
  await parquet.finish()
  yield take()
}
