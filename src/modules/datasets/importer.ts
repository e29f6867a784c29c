import {
  type ColumnType,
  convert,
  type DatasetColumn,
  kindOf,
  nameColumns,
  type StoredValue,
  ValueError,
  type ValueKind,
  widen,
} from './columns.js'
import { DatasetImportFailed } from './errors.js'
import {
  type BadLine,
  type ReadSettings,
  readRecords,
  type SourceRecord,
  UnreadableFile,
} from './readers.js'
import type { RowStore } from './row-store.js'
import { ColumnStatsCollector } from './stats.js'

/** A column declared in the upload's `schema` part, by its name in the file. */
export interface DeclaredColumn {
  name: string
  type: ColumnType
  nullable?: boolean
}

export interface ImportSettings extends ReadSettings {
  onError: 'fail' | 'skip'
  schema?: DeclaredColumn[]
  maxColumns: number
}

export interface ImportOutcome {
  columns: DatasetColumn[]
  rowCount: number
  skipped: { count: number; lines: BadLine[] }
}

export type ImportProgress = (fraction: number, message: string) => Promise<void>

/** Bad lines listed in a failure (the import stops there) and when skipping (all are counted). */
const FAILED_LINES_SHOWN = 10
const SKIPPED_LINES_SHOWN = 100
const PROGRESS_EVERY_ROWS = 50_000

/** How one record maps onto the columns: values in column order, or why it cannot. */
type Mapper = (record: SourceRecord) => unknown[] | BadLine

/**
 * Reads the file twice, streamed: first to learn (or check) the schema and find every bad
 * line, then to load the good ones into the dataset's rows table. A failure in either pass
 * drops the table, so nothing of a failed import remains.
 */
export async function importFile(
  store: RowStore,
  datasetId: string,
  settings: ImportSettings,
  progress: ImportProgress = async () => {},
): Promise<ImportOutcome> {
  await progress(0, 'reading the file')
  const scan = await scanFile(settings)
  const shown = settings.onError === 'fail' ? FAILED_LINES_SHOWN : SKIPPED_LINES_SHOWN
  if (settings.onError === 'fail' && scan.bad.length > 0) {
    throw importFailed(scan.bad.slice(0, shown), scan.badCount)
  }
  await progress(0.4, `loading ${scan.goodCount} rows`)
  await store.createTable(datasetId, scan.columns)
  try {
    const rowCount = await loadRows(store, datasetId, settings, scan, progress)
    await progress(0.9, 'indexing')
    await store.finishTable(datasetId)
    return {
      columns: scan.columns,
      rowCount,
      skipped: { count: scan.badCount, lines: scan.bad.slice(0, shown) },
    }
  } catch (error) {
    await store.dropTable(datasetId).catch(() => {})
    throw error
  }
}

function importFailed(lines: BadLine[], count: number) {
  const first = lines[0]
  return new DatasetImportFailed(
    first
      ? `The file has ${count} bad line(s); the first, line ${first.line}${first.column ? ` (column ${first.column})` : ''}, ${first.reason}. Nothing was imported.`
      : 'The file could not be imported.',
    { bad_lines: lines, bad_line_count: count },
  )
}

interface Scan {
  columns: DatasetColumn[]
  mapper: Mapper
  bad: BadLine[]
  badCount: number
  goodCount: number
}

async function scanFile(settings: ImportSettings): Promise<Scan> {
  const shape = settings.format === 'csv' ? csvShape(settings) : objectShape(settings)
  const bad: BadLine[] = []
  let badCount = 0
  let goodCount = 0
  const keep = settings.onError === 'fail' ? FAILED_LINES_SHOWN : SKIPPED_LINES_SHOWN
  try {
    for await (const record of readRecords(settings)) {
      const outcome = shape.scan(record)
      if (outcome === null) continue
      if ('reason' in outcome) {
        badCount++
        if (bad.length < keep) bad.push(outcome)
        // Failing: once the report is full, reading on would only count.
        if (settings.onError === 'fail' && bad.length >= keep) break
      } else {
        goodCount++
      }
    }
  } catch (error) {
    if (error instanceof UnreadableFile) throw importFailed([error.bad], badCount + 1)
    throw error
  }
  const columns = shape.columns()
  if (columns.length === 0) {
    throw importFailed([{ line: 1, column: null, reason: 'has no columns' }], 1)
  }
  return { columns, mapper: shape.mapper(columns), bad, badCount, goodCount }
}

interface Shape {
  /** Learns from one record: null for the header, a BadLine, or the record's values. */
  scan(record: SourceRecord): BadLine | unknown[] | null
  columns(): DatasetColumn[]
  mapper(columns: DatasetColumn[]): Mapper
}

/** Learns each column's type from its values, or checks them against the declared type. */
class TypeLearner {
  readonly kinds: ValueKind[] = []
  readonly nulls: boolean[] = []

  constructor(
    private readonly declared: (ColumnType | undefined)[],
    /** Declared `nullable: false`: a missing value makes the line bad. */
    private readonly required: boolean[] = [],
  ) {}

  /** A BadLine when a value does not fit; otherwise records what it saw. */
  learn(values: readonly unknown[], names: readonly string[], line: number, fromText: boolean) {
    for (let i = 0; i < names.length; i++) {
      const value = values[i]
      const declared = this.declared[i]
      let kind: ValueKind
      try {
        if (declared) {
          kind = convert(value, declared, fromText) === null ? null : declared
          if (kind === null && this.required[i]) throw new ValueError('is required')
        } else {
          kind = kindOf(value, fromText)
          if (kind === 'string') convert(value, 'string', fromText)
        }
      } catch (error) {
        if (!(error instanceof ValueError)) throw error
        return { line, column: names[i] as string, reason: error.message }
      }
      if (kind === null) this.nulls[i] = true
      this.kinds[i] = widen(this.kinds[i] ?? null, kind)
    }
    return null
  }
}

function declaredTypes(settings: ImportSettings, names: readonly string[]) {
  if (!settings.schema) return names.map(() => undefined)
  const byName = new Map(settings.schema.map((column) => [column.name, column]))
  const missing = settings.schema.filter((c) => !names.includes(c.name)).map((c) => c.name)
  if (missing.length > 0) {
    throw importFailed(
      missing.map((name) => ({
        line: 1,
        column: name,
        reason: 'is declared in the schema but not in the file',
      })),
      missing.length,
    )
  }
  return names.map((name) => byName.get(name)?.type)
}

function declaredRequired(settings: ImportSettings, names: readonly string[]) {
  const byName = new Map((settings.schema ?? []).map((column) => [column.name, column]))
  return names.map((name) => byName.get(name)?.nullable === false)
}

function finalColumns(
  named: ReturnType<typeof nameColumns>,
  learner: TypeLearner,
  settings: ImportSettings,
): DatasetColumn[] {
  const declared = new Map((settings.schema ?? []).map((c) => [c.name, c]))
  return named.map((column, i) => {
    const given = declared.get(column.source_name)
    return {
      ...column,
      type: given?.type ?? learner.kinds[i] ?? 'string',
      nullable: given
        ? given.nullable !== false
        : (learner.nulls[i] ?? false) || learner.kinds[i] === undefined,
    }
  })
}

function tooManyColumns(count: number, max: number, line: number): never {
  throw importFailed(
    [{ line, column: null, reason: `has ${count} columns; at most ${max} are allowed` }],
    1,
  )
}

function csvShape(settings: ImportSettings): Shape {
  let header: string[] | null = null
  let learner: TypeLearner
  return {
    scan(record) {
      if ('bad' in record) return record.bad
      if (!('fields' in record)) return null
      if (header === null) {
        header = record.fields
        if (header.length > settings.maxColumns)
          tooManyColumns(header.length, settings.maxColumns, record.line)
        const names = nameColumns(header).map((c) => c.source_name)
        learner = new TypeLearner(declaredTypes(settings, names), declaredRequired(settings, names))
        return null
      }
      const check = checkCsvRecord(record.fields, header, record.line)
      if (check) return check
      return learner.learn(record.fields, header, record.line, true) ?? record.fields
    },
    columns() {
      if (header === null) return []
      return finalColumns(nameColumns(header), learner, settings)
    },
    mapper(columns) {
      let headerSeen = false
      return (record) => {
        if ('bad' in record) return record.bad
        if (!('fields' in record))
          return { line: record.line, column: null, reason: 'is not a row' }
        if (!headerSeen) {
          headerSeen = true
          return { line: record.line, column: null, reason: 'header' }
        }
        return checkCsvRecord(record.fields, columns, record.line) ?? record.fields
      }
    },
  }
}

function checkCsvRecord(
  fields: string[],
  header: readonly unknown[],
  line: number,
): BadLine | null {
  if (fields.length === header.length) return null
  return {
    line,
    column: null,
    reason: `has ${fields.length} fields; the header has ${header.length}`,
  }
}

function objectShape(settings: ImportSettings): Shape {
  const keys: string[] = settings.schema ? settings.schema.map((c) => c.name) : []
  const known = new Set(keys)
  const learner = new TypeLearner(
    settings.schema ? settings.schema.map((c) => c.type) : [],
    declaredRequired(settings, keys),
  )
  let rows = 0
  return {
    scan(record) {
      if ('bad' in record) return record.bad
      if (!('object' in record)) return null
      if (!settings.schema) {
        for (const key of Object.keys(record.object)) {
          if (known.has(key)) continue
          if (keys.length >= settings.maxColumns)
            tooManyColumns(keys.length + 1, settings.maxColumns, record.line)
          known.add(key)
          keys.push(key)
          // A key first seen now was missing from every earlier record.
          if (rows > 0) learner.nulls[keys.length - 1] = true
        }
      }
      rows++
      const values = keys.map((key) => record.object[key])
      return learner.learn(values, keys, record.line, false) ?? values
    },
    columns() {
      return finalColumns(nameColumns(keys), learner, settings)
    },
    mapper() {
      return (record) => {
        if ('bad' in record) return record.bad
        if (!('object' in record))
          return { line: record.line, column: null, reason: 'is not a row' }
        const object = record.object
        return keys.map((key) => object[key])
      }
    },
  }
}

async function loadRows(
  store: RowStore,
  datasetId: string,
  settings: ImportSettings,
  scan: Scan,
  progress: ImportProgress,
): Promise<number> {
  const { columns, mapper } = scan
  const fromText = settings.format === 'csv'
  const stats = columns.map((c) => new ColumnStatsCollector(c.type))
  const sink = await store.openSink(datasetId, columns)
  let rows = 0
  try {
    for await (const record of readRecords(settings)) {
      const values = mapper(record)
      if (!Array.isArray(values)) continue
      const row = toRow(values, columns, fromText)
      if (row === null) continue
      for (let i = 0; i < row.length; i++) stats[i]?.add(row[i] as StoredValue)
      rows++
      const waiting = sink.write(row)
      if (waiting) await waiting
      if (rows % PROGRESS_EVERY_ROWS === 0) {
        await progress(0.4 + (0.5 * rows) / Math.max(scan.goodCount, 1), `loaded ${rows} rows`)
      }
    }
    await sink.close()
  } catch (error) {
    await sink.abort()
    throw error
  }
  columns.forEach((column, i) => {
    column.stats = stats[i]?.result()
  })
  return rows
}

/** The row's stored values, or null for a line the scan already reported. */
function toRow(
  values: unknown[],
  columns: DatasetColumn[],
  fromText: boolean,
): StoredValue[] | null {
  const row: StoredValue[] = new Array(columns.length)
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i] as DatasetColumn
    try {
      const value = convert(values[i], column.type, fromText)
      if (value === null && !column.nullable) return null
      row[i] = value
    } catch (error) {
      if (error instanceof ValueError) return null
      throw error
    }
  }
  return row
}
