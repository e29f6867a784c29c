import { randomUUID } from 'node:crypto'
import { rename } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { InTransaction } from '../../db/client.js'
import { type Caller, canSee, ownerScope } from '../../shared/caller.js'
import { ValidationFailed } from '../../shared/errors.js'
import { pageOf, toPage } from '../../shared/schemas.js'
import { enqueueJob } from '../jobs/repository.js'
import { convert, type DatasetColumn, type StoredValue, ValueError } from './columns.js'
import {
  DatasetImportFailed,
  DatasetNotFound,
  DatasetNotReady,
  InvalidCursor,
  UnsupportedDatasetFormat,
} from './errors.js'
import { type ImportOutcome, type ImportSettings, importFile } from './importer.js'
import {
  type DatasetFormat,
  detectDelimiter,
  detectEncoding,
  detectFormat,
  type TextEncoding,
} from './readers.js'
import type { DatasetRepository, FilterOperator, RowFilter } from './repository.js'
import type { RowStore } from './row-store.js'
import {
  type Dataset,
  type DatasetListQuery,
  type DatasetUpdate,
  FILTER_KEY,
  type RowsQuery,
  type UploadFields,
} from './schemas.js'
import { removeFile, type SpooledFile } from './spool.js'
import type { DatasetRow } from './table.js'
import { CONTENT_TYPES, type DownloadFormat, encodeRows } from './writers.js'

export interface DatasetLimits {
  /** Files up to this size import during the request (201); larger ones in a job (202). */
  inlineMaxBytes: number
  maxColumns: number
  maxLineBytes: number
  /** Where uploads wait for their import job. */
  uploadDir: string
}

export interface DatasetServiceDeps {
  datasets: DatasetRepository
  rows: RowStore
  inTransaction: InTransaction
  limits: DatasetLimits
  /** Called once an import job is committed, so the runner starts it without waiting. */
  jobEnqueued?: () => void
}

export interface UploadInput extends UploadFields {
  file: SpooledFile
  filename: string
  requestId: string | null
}

export type UploadOutcome =
  | { status: 201; dataset: Dataset }
  | { status: 202; dataset: Dataset; job_id: string }

const FILTER_TYPES: Record<FilterOperator, ReadonlySet<string>> = {
  eq: new Set(['integer', 'number', 'boolean', 'string', 'date', 'timestamp']),
  ne: new Set(['integer', 'number', 'boolean', 'string', 'date', 'timestamp']),
  gt: new Set(['integer', 'number', 'string', 'date', 'timestamp']),
  gte: new Set(['integer', 'number', 'string', 'date', 'timestamp']),
  lt: new Set(['integer', 'number', 'string', 'date', 'timestamp']),
  lte: new Set(['integer', 'number', 'string', 'date', 'timestamp']),
  in: new Set(['integer', 'number', 'string', 'date', 'timestamp']),
  contains: new Set(['string']),
  is_null: new Set(['integer', 'number', 'boolean', 'string', 'date', 'timestamp']),
}
const IN_MAX_VALUES = 1000

export function toDataset(row: DatasetRow): Dataset {
  return {
    id: row.id,
    owner_id: row.ownerId,
    name: row.name,
    description: row.description,
    format: row.format,
    status: row.status,
    row_count: Number(row.rowCount),
    size_bytes: Number(row.sizeBytes),
    sha256: row.sha256,
    columns: row.columns.map(({ sql_name: _sql, ...column }) => column),
    import: row.import,
    error: row.error,
    job_id: row.jobId,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  }
}

/** The settings a file is imported with, from the upload's fields and its first bytes. */
export function importSettings(
  path: string,
  format: DatasetFormat,
  head: Uint8Array,
  fields: Pick<UploadFields, 'delimiter' | 'encoding' | 'on_error' | 'schema'>,
  limits: Pick<DatasetLimits, 'maxColumns' | 'maxLineBytes'>,
): ImportSettings {
  const encoding: TextEncoding = fields.encoding ?? detectEncoding(head)
  return {
    path,
    format,
    encoding,
    delimiter: format === 'csv' ? (fields.delimiter ?? detectDelimiter(head, encoding)) : ',',
    onError: fields.on_error ?? 'fail',
    schema: fields.schema,
    maxColumns: limits.maxColumns,
    maxLineBytes: limits.maxLineBytes,
  }
}

/** Column types the import found, and the skipped lines, as the dataset row records them. */
export function importedValues(outcome: ImportOutcome, settings: ImportSettings) {
  return {
    status: 'ready' as const,
    columns: outcome.columns,
    rowCount: outcome.rowCount,
    import: {
      ...(settings.format === 'csv' ? { delimiter: settings.delimiter } : {}),
      ...(settings.format === 'parquet' ? {} : { encoding: settings.encoding }),
      on_error: settings.onError,
      skipped_count: outcome.skipped.count,
      skipped_lines: outcome.skipped.lines,
    },
    error: null,
  }
}

interface Cursor {
  /** A digest of the query the cursor belongs to: another query cannot reuse it. */
  q: string
  v: StoredValue
  r: number
}

export function createDatasetService({
  datasets,
  rows,
  inTransaction,
  limits,
  jobEnqueued,
}: DatasetServiceDeps) {
  async function visible(caller: Caller, id: string): Promise<DatasetRow> {
    const row = await datasets.find(id)
    if (!row || !canSee(caller, row.ownerId)) {
      throw new DatasetNotFound(`Dataset ${id} does not exist.`)
    }
    return row
  }

  async function ready(caller: Caller, id: string): Promise<DatasetRow> {
    const row = await visible(caller, id)
    if (row.status !== 'ready') {
      throw new DatasetNotReady(`Dataset ${id} is ${row.status}; its rows cannot be read.`, {
        dataset_status: row.status,
      })
    }
    return row
  }

  function columnNamed(row: DatasetRow, name: string, path: string): DatasetColumn {
    const column = row.columns.find((c) => c.name === name)
    if (!column) {
      throw new ValidationFailed([
        { path, message: `names no column of this dataset (${name.slice(0, 100)})` },
      ])
    }
    return column
  }

  function parseFilters(row: DatasetRow, query: Record<string, unknown>): RowFilter[] {
    const filters: RowFilter[] = []
    for (const [key, raw] of Object.entries(query)) {
      const match = FILTER_KEY.exec(key)
      if (!match) continue
      const path = `query.${key}`
      const column = columnNamed(row, match[1] as string, path)
      const operator = match[2] as FilterOperator
      if (!FILTER_TYPES[operator].has(column.type)) {
        throw new ValidationFailed([
          {
            path,
            message: `operator ${operator} does not apply to column ${column.name} (${column.type})`,
          },
        ])
      }
      const text = String(raw)
      const typed = (value: string) => {
        try {
          const converted = convert(value, column.type, true)
          if (converted === null) throw new ValueError('is empty')
          return converted
        } catch (error) {
          if (!(error instanceof ValueError)) throw error
          throw new ValidationFailed([
            {
              path,
              message: `column ${column.name} is ${column.type}; the value ${error.message}`,
            },
          ])
        }
      }
      if (operator === 'is_null') {
        if (text !== 'true' && text !== 'false') {
          throw new ValidationFailed([{ path, message: 'must be true or false' }])
        }
        filters.push({ column, operator, value: text === 'true' })
      } else if (operator === 'in') {
        const values = text.split(',')
        if (values.length > IN_MAX_VALUES) {
          throw new ValidationFailed([
            { path, message: `must list at most ${IN_MAX_VALUES} values` },
          ])
        }
        filters.push({ column, operator, value: values.map(typed) })
      } else if (operator === 'contains') {
        filters.push({ column, operator, value: text })
      } else {
        filters.push({ column, operator, value: typed(text) })
      }
    }
    return filters
  }

  return {
    async upload(caller: Caller, input: UploadInput): Promise<UploadOutcome> {
      const { file } = input
      let keepFile = false
      try {
        const format = detectFormat(file.head, input.encoding)
        if (format === null) {
          throw new UnsupportedDatasetFormat(
            'The file is none of CSV, a JSON array, NDJSON or Parquet (judged by its content).',
            {
              accepted: [
                'text/csv',
                'application/json',
                'application/x-ndjson',
                'application/vnd.apache.parquet',
              ],
            },
          )
        }
        const id = randomUUID()
        const base = {
          id,
          ownerId: caller.userId,
          name: input.name ?? (input.filename || 'dataset').slice(0, 200),
          description: input.description ?? null,
          format,
          sizeBytes: file.size,
          sha256: file.sha256,
        }
        if (file.size > limits.inlineMaxBytes) {
          // The job reads the file later, maybe on another process: it moves to a known place.
          const path = join(limits.uploadDir, `${id}.upload`)
          await rename(file.path, path)
          keepFile = true
          const settings = importSettings(path, format, file.head, input, limits)
          const { dataset, job } = await inTransaction(async (tx) => {
            const job = await enqueueJob(tx, {
              type: 'dataset_import',
              params: {
                dataset_id: id,
                upload_path: path,
                format,
                on_error: settings.onError,
                options: {
                  delimiter: settings.delimiter,
                  encoding: settings.encoding,
                  schema: input.schema,
                },
              },
              owner_id: caller.userId,
              request_id: input.requestId,
            })
            const dataset = await datasets.insert(
              { ...base, status: 'importing', jobId: job.id },
              tx,
            )
            return { dataset, job }
          }).catch(async (error) => {
            await removeFile(path)
            throw error
          })
          jobEnqueued?.()
          return { status: 202, dataset: toDataset(dataset), job_id: job.id }
        }
        const settings = importSettings(file.path, format, file.head, input, limits)
        const outcome = await importFile(rows, id, settings)
        try {
          const dataset = await datasets.insert({ ...base, ...importedValues(outcome, settings) })
          return { status: 201, dataset: toDataset(dataset) }
        } catch (error) {
          await rows.dropTable(id).catch(() => {})
          throw error
        }
      } finally {
        if (!keepFile) await removeFile(file.path)
      }
    },

    async list(caller: Caller, query: DatasetListQuery) {
      const { limit, offset } = pageOf(query)
      const { items, total } = await datasets.list({
        ownerId: ownerScope(caller),
        format: query.format,
        status: query.status,
        search: query.q,
        limit,
        offset,
      })
      return toPage(items.map(toDataset), total, query)
    },

    async get(caller: Caller, id: string): Promise<Dataset> {
      return toDataset(await visible(caller, id))
    },

    async update(caller: Caller, id: string, changes: DatasetUpdate): Promise<Dataset> {
      await visible(caller, id)
      const row = await datasets.update(id, changes)
      if (!row) throw new DatasetNotFound(`Dataset ${id} does not exist.`)
      return toDataset(row)
    },

    /** The metadata row and the rows table go together, or neither does. */
    async remove(caller: Caller, id: string): Promise<void> {
      await visible(caller, id)
      await inTransaction(async (tx) => {
        if (!(await datasets.remove(id, tx)))
          throw new DatasetNotFound(`Dataset ${id} does not exist.`)
        await rows.dropTable(id, tx)
      })
    },

    async rows(caller: Caller, id: string, query: RowsQuery) {
      const row = await ready(caller, id)
      const { page, pageSize, limit, offset } = pageOf(query)
      const select = query.columns
        ? [...new Set(query.columns.split(','))].map((name) =>
            columnNamed(row, name, 'query.columns'),
          )
        : row.columns
      const descending = query.sort?.startsWith('-') ?? false
      const sort = query.sort ? columnNamed(row, query.sort.replace(/^-/, ''), 'query.sort') : null
      const filters = parseFilters(row, query)
      const digest = JSON.stringify([
        id,
        query.sort ?? '',
        Object.entries(query)
          .filter(([key]) => FILTER_KEY.test(key))
          .sort(),
      ])
      let after: { value: StoredValue; row: number } | undefined
      if (query.cursor) {
        const cursor = decodeCursor(query.cursor)
        if (!cursor || cursor.q !== digest) {
          throw new InvalidCursor('The cursor belongs to another dataset, sort or filter.')
        }
        after = { value: cursor.v, row: cursor.r }
      }
      const [found, total] = await Promise.all([
        datasets.queryRows({
          datasetId: id,
          select,
          filters,
          sort,
          descending,
          limit,
          offset: after ? 0 : offset,
          after,
        }),
        datasets.countRows(id, filters),
      ])
      const last = found.rows.at(-1)
      const more = after ? found.rows.length === limit : offset + found.rows.length < total
      return {
        items: found.rows.map((r) => r.values),
        page: after ? 1 : page,
        page_size: pageSize,
        total,
        total_pages: Math.ceil(total / pageSize),
        next_cursor:
          last && more
            ? encodeCursor({ q: digest, v: (last.sortValue ?? null) as StoredValue, r: last.row })
            : null,
      }
    },

    async download(caller: Caller, id: string, format: DownloadFormat) {
      const row = await ready(caller, id)
      const columns = row.columns
      return {
        filename: `${safeFilename(row.name)}.${format}`,
        contentType: CONTENT_TYPES[format],
        body: Readable.from(encodeRows(format, columns, datasets.streamRows(id, columns)), {
          objectMode: false,
        }),
      }
    },

    /** For the import job: the dataset row, whether or not the caller may see it. */
    visible,
  }
}

export type DatasetService = ReturnType<typeof createDatasetService>

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url')
}

function decodeCursor(text: string): Cursor | null {
  try {
    const value = JSON.parse(Buffer.from(text, 'base64url').toString()) as Cursor
    if (typeof value.q !== 'string' || !Number.isSafeInteger(value.r)) return null
    if (!['string', 'number'].includes(typeof value.v) && value.v !== null) return null
    return value
  } catch {
    return null
  }
}

function safeFilename(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 100) || 'dataset'
}

export { DatasetImportFailed }
