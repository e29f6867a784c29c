import { stat } from 'node:fs/promises'
import {
  type ColumnType,
  convert,
  convertForLoad,
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
  type ReadProgress,
  type ReadSettings,
  readRecords,
  type SourceRecord,
  UnreadableFile,
} from './readers.js'
import type { RowSink, RowStore } from './row-store.js'
import { RowSketches } from './stats.js'

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
/**
 * Rows whose values decide the inferred types before the load starts. They are held in
 * memory, then loaded; later rows are checked against those types as they stream into the
 * table.
 */
const LEARNING_ROWS = 5_000
/** ...or the rows within this many bytes of the file, when its lines are long. */
const LEARNING_BYTES = 16 * 1024 * 1024

/**
 * Reads the file once, streamed: the first rows teach (or check) the schema, the table is
 * created, and every row is converted, checked and loaded as it is read. Only when a value
 * after the first rows needs a wider type than they showed (text in a column of numbers,
 * say) is the load dropped and the file read twice: once to learn the types from every row,
 * once to load. A failure at any point drops the table, so nothing of a failed import remains.
 */
export async function importFile(
  store: RowStore,
  datasetId: string,
  settings: ImportSettings,
  progress: ImportProgress = async () => {},
): Promise<ImportOutcome> {
  // The retry starts reading again: its progress must not run backwards for the listeners.
  let reported = 0
  const forward: ImportProgress = async (fraction, message) => {
    reported = Math.max(reported, fraction)
    await progress(reported, message)
  }
  await forward(0, 'reading the file')
  try {
    return await importOnce(store, datasetId, settings, forward, LEARNING_ROWS)
  } catch (error) {
    if (!(error instanceof TypesChanged)) throw error
  }
  await forward(reported, 'types changed after the first rows: learning them from every row')
  return importOnce(store, datasetId, settings, forward, Number.POSITIVE_INFINITY)
}

/** A value after the learning rows needs a wider type than they showed. */
class TypesChanged extends Error {}

function importFailed(lines: BadLine[], count: number) {
  const first = lines[0]
  return new DatasetImportFailed(
    first
      ? `The file has ${count} bad line(s); the first, line ${first.line}${first.column ? ` (column ${first.column})` : ''}, ${first.reason}. Nothing was imported.`
      : 'The file could not be imported.',
    { bad_lines: lines, bad_line_count: count },
  )
}

/** The bad lines an import reports: all counted, the first few listed. */
class BadLines {
  readonly lines: BadLine[] = []
  count = 0
  readonly #keep: number

  constructor(readonly failing: boolean) {
    this.#keep = failing ? FAILED_LINES_SHOWN : SKIPPED_LINES_SHOWN
  }

  add(bad: BadLine) {
    this.count++
    if (this.lines.length < this.#keep) this.lines.push(bad)
  }

  /** Failing: once the report is full, reading on would only count. */
  get full() {
    return this.failing && this.lines.length >= this.#keep
  }

  failure() {
    return importFailed(this.lines, this.count)
  }
}

/**
 * One import attempt. `learnRows` rows (at least one) are scanned and held before the table
 * exists; with an infinite count the scan covers the file, nothing is held, and the load
 * reads the file again.
 */
async function importOnce(
  store: RowStore,
  datasetId: string,
  settings: ImportSettings,
  progress: ImportProgress,
  learnRows: number,
): Promise<ImportOutcome> {
  const shape = settings.format === 'csv' ? csvShape(settings) : objectShape(settings)
  const rescan = !Number.isFinite(learnRows)
  const bad = new BadLines(settings.onError === 'fail')
  const size = Math.max((await stat(settings.path)).size, 1)
  const read: ReadProgress = { bytes: 0 }
  const records = readRecords(settings, read)[Symbol.asyncIterator]()
  const held: unknown[][] = []
  let rest: SourceRecord[] = []
  try {
    learning: for (;;) {
      const next = await records.next()
      if (next.done) break
      const batch = next.value
      for (let k = 0; k < batch.length; k++) {
        const outcome = shape.scan(batch[k] as SourceRecord)
        if (outcome === null) continue
        if ('reason' in outcome) {
          bad.add(outcome)
          if (bad.full) throw bad.failure()
          continue
        }
        if (!rescan) held.push(outcome)
        if (held.length >= learnRows || (!rescan && read.bytes >= LEARNING_BYTES)) {
          rest = batch.slice(k + 1)
          break learning
        }
      }
    }
    if (bad.failing && bad.count > 0) await reportTheRest(shape, rest, records, bad)
  } catch (error) {
    await records.return?.()
    if (error instanceof UnreadableFile) throw importFailed([error.bad], bad.count + 1)
    throw error
  }
  const columns = shape.columns()
  if (columns.length === 0) {
    await records.return?.()
    throw importFailed([{ line: 1, column: null, reason: 'has no columns' }], 1)
  }
  await progress(0.05, rescan ? 'loading the rows' : 'loading the rows as they are read')
  const sketches = new RowSketches(columns.length)
  let sink: RowSink | undefined
  let rows = 0
  // A rescan reads the file again from its first byte.
  const loading: ReadProgress = rescan ? { bytes: 0 } : read
  try {
    sink = await store.openSink(datasetId, columns)
    // Not an async function, which cost a promise and a microtask for every row of the file:
    // it answers a promise only when the sink or a progress report has to be waited for.
    const write = (row: StoredValue[], asWritten?: string): Promise<unknown> | undefined => {
      sketches.add(row)
      rows++
      const waiting = (sink as RowSink).write(row, asWritten)
      if (rows % PROGRESS_EVERY_ROWS !== 0) return waiting
      const report = () => progress(0.05 + (0.85 * loading.bytes) / size, `loaded ${rows} rows`)
      return waiting ? waiting.then(report) : report()
    }
    const fromText = settings.format === 'csv'
    for (const values of held) {
      const row = toRow(values, columns, fromText)
      const waiting = row === null ? undefined : write(row)
      if (waiting) await waiting
    }
    held.length = 0
    const check = shape.checker(columns, rescan)
    const source = rescan ? readRecords(settings, loading) : remaining(rest, records)
    for await (const batch of source) {
      for (let k = 0; k < batch.length; k++) {
        const outcome = check(batch[k] as SourceRecord)
        if (outcome === null) continue
        if (Array.isArray(outcome)) {
          const waiting = write(outcome, shape.asWritten(batch[k] as SourceRecord, outcome))
          if (waiting) await waiting
          continue
        }
        // A rescan met every bad line in its first pass already.
        if (rescan) continue
        bad.add(outcome)
        if (bad.failing) {
          await sink.abort()
          sink = undefined
          await store.dropTable(datasetId)
          if (!bad.full) await reportTheRest(shape, batch.slice(k + 1), records, bad)
          throw bad.failure()
        }
      }
    }
    await sink.close()
    sink = undefined
    await progress(0.9, 'indexing')
    const stats = await store.finishTable(datasetId, columns, sketches)
    columns.forEach((column, i) => {
      column.stats = stats[i]
    })
  } catch (error) {
    await records.return?.().catch(() => {})
    await sink?.abort()
    await store.dropTable(datasetId).catch(() => {})
    if (error instanceof UnreadableFile) throw importFailed([error.bad], bad.count + 1)
    throw error
  }
  return {
    columns,
    rowCount: rows,
    skipped: { count: bad.count, lines: bad.lines },
  }
}

/** The held batch's rest, then the records still unread. */
async function* remaining(rest: SourceRecord[], records: AsyncIterator<SourceRecord[]>) {
  if (rest.length > 0) yield rest
  for (;;) {
    const next = await records.next()
    if (next.done) return
    yield next.value
  }
}

/** The import fails: the rest of the file is only scanned, for the report's first lines. */
async function reportTheRest(
  shape: Shape,
  rest: SourceRecord[],
  records: AsyncIterator<SourceRecord[]>,
  bad: BadLines,
): Promise<never> {
  try {
    for await (const batch of remaining(rest, records)) {
      for (const record of batch) {
        const outcome = shape.scan(record)
        if (outcome === null || !('reason' in outcome)) continue
        bad.add(outcome)
        if (bad.full) throw bad.failure()
      }
    }
  } finally {
    await records.return?.()
  }
  throw bad.failure()
}

interface Shape {
  /** Learns from one record: null for the header, a BadLine, or the record's values. */
  scan(record: SourceRecord): BadLine | unknown[] | null
  columns(): DatasetColumn[]
  /**
   * Converts a record to the columns' stored values once the types are set: null for the
   * header, a BadLine, or the row; throws TypesChanged for a value that needs a wider type.
   * `withHeader`: the records start at the file's beginning again.
   */
  checker(columns: DatasetColumn[], withHeader: boolean): Checker
  /**
   * The record's own text when COPY's CSV reads it as exactly the row's values, so that the
   * sink copies it instead of writing the values out again; undefined otherwise.
   */
  asWritten(record: SourceRecord, row: readonly StoredValue[]): string | undefined
}

/**
 * Answers a record's row in an array of its own that the next record overwrites: the row is
 * written out before the next record is read, and one array a file costs less than one a row.
 */
type Checker = (record: SourceRecord) => StoredValue[] | BadLine | null

/** Learns each column's type from its values, or checks them against the declared type. */
class TypeLearner {
  readonly kinds: ValueKind[] = []
  readonly nulls: boolean[] = []

  constructor(
    readonly declared: (ColumnType | undefined)[],
    /** Declared `nullable: false`: a missing value makes the line bad. */
    readonly required: boolean[] = [],
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

  /**
   * One converter per column for the load: a declared column checks its type; an inferred
   * one takes what fits the type learned so far, turns nullable on its first null, and
   * throws TypesChanged for a value that would have widened the type.
   */
  converters(columns: DatasetColumn[], fromText: boolean): ((value: unknown) => StoredValue)[] {
    return columns.map((column, i) => {
      const declared = this.declared[i]
      if (declared) {
        const required = this.required[i] ?? false
        return (value) => {
          const stored = convertForLoad(value, declared, fromText)
          if (stored === null && required) throw new ValueError('is required')
          return stored
        }
      }
      const learned = this.kinds[i] ?? null
      if (learned === null) {
        // No value among the learning rows: typed 'string' unless a later value says otherwise.
        return (value) => {
          const kind = kindOf(value, fromText)
          if (kind !== null && kind !== 'string') throw new TypesChanged()
          return convert(value, 'string', fromText)
        }
      }
      const type = column.type
      return (value) => {
        let stored: StoredValue
        try {
          stored = convertForLoad(value, type, fromText)
        } catch (error) {
          if (!(error instanceof ValueError)) throw error
          // Text no column type can hold (a NUL) makes the line bad; anything else widens.
          convert(value, 'string', fromText)
          throw new TypesChanged()
        }
        if (stored === null) column.nullable = true
        else if (typeof value !== 'string' && widen(type, kindOf(value, fromText)) !== type) {
          // A JSON or Parquet value keeps its own type: a Date in a date column, say.
          throw new TypesChanged()
        }
        return stored
      }
    })
  }
}

/** A record's values converted for the columns, or the first that does not fit. */
function convertRow(
  values: readonly unknown[],
  converters: ((value: unknown) => StoredValue)[],
  columns: readonly DatasetColumn[],
  line: number,
  row: StoredValue[],
): StoredValue[] | BadLine {
  for (let i = 0; i < converters.length; i++) {
    try {
      row[i] = (converters[i] as (value: unknown) => StoredValue)(values[i])
    } catch (error) {
      if (!(error instanceof ValueError)) throw error
      return { line, column: (columns[i] as DatasetColumn).source_name, reason: error.message }
    }
  }
  return row
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

const NOT_A_ROW = 'is not a row'

function csvShape(settings: ImportSettings): Shape {
  let header: string[] | null = null
  // A record passes to COPY as written only where COPY splits it the same way: its quoting
  // is RFC 4180's, as COPY's CSV, but COPY is told of no delimiter other than the comma.
  const verbatim = settings.delimiter === ','
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
    checker(columns, withHeader) {
      const converters = learner.converters(columns, true)
      const row: StoredValue[] = new Array(columns.length)
      let headerSeen = !withHeader
      return (record) => {
        if ('bad' in record) return record.bad
        if (!('fields' in record)) return { line: record.line, column: null, reason: NOT_A_ROW }
        if (!headerSeen) {
          headerSeen = true
          return null
        }
        return (
          checkCsvRecord(record.fields, columns, record.line) ??
          convertRow(record.fields, converters, columns, record.line, row)
        )
      }
    },
    asWritten(record, row) {
      if (!verbatim || !('text' in record)) return undefined
      const fields = record.fields
      for (let i = 0; i < row.length; i++) {
        const value = row[i]
        if (value === fields[i]) continue
        // COPY reads an empty unquoted field as null; a quoted one would be an empty string.
        if (value === null && fields[i] === '' && !record.quoted) continue
        return undefined
      }
      return record.text
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
    checker(columns) {
      const converters = learner.converters(columns, false)
      const row: StoredValue[] = new Array(columns.length)
      return (record) => {
        if ('bad' in record) return record.bad
        if (!('object' in record)) return { line: record.line, column: null, reason: NOT_A_ROW }
        const object = record.object
        if (!settings.schema) {
          for (const key in object) if (!known.has(key)) throw new TypesChanged()
        }
        return convertRow(
          keys.map((key) => object[key]),
          converters,
          columns,
          record.line,
          row,
        )
      }
    },
    asWritten: () => undefined,
  }
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
      const value = convertForLoad(values[i], column.type, fromText)
      if (value === null && !column.nullable) return null
      row[i] = value
    } catch (error) {
      if (error instanceof ValueError) return null
      throw error
    }
  }
  return row
}
