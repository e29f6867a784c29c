/** Column types, name sanitising, type inference and value conversion for imported rows. */

export const COLUMN_TYPES = ['integer', 'number', 'boolean', 'string', 'date', 'timestamp'] as const
export type ColumnType = (typeof COLUMN_TYPES)[number]

export const SQL_TYPES: Record<ColumnType, string> = {
  integer: 'bigint',
  number: 'double precision',
  boolean: 'boolean',
  string: 'text',
  date: 'date',
  timestamp: 'timestamptz',
}

export interface ColumnStats {
  min: string | number | boolean | null
  max: string | number | boolean | null
  mean: number | null
  null_count: number
  distinct_count: number
  /** False when `distinct_count` is a HyperLogLog estimate. */
  distinct_exact: boolean
}

/** One column as the API shows it and as the rows table stores it. */
export interface DatasetColumn {
  /** The unique name the API uses (rows, filters, sorts). */
  name: string
  /** The header, key or field as the file had it. */
  source_name: string
  /** The column in the rows table: sanitised, so it is always a safe SQL identifier. */
  sql_name: string
  type: ColumnType
  nullable: boolean
  stats?: ColumnStats
}

const MAX_IDENTIFIER = 63

/**
 * Unique API names and SQL names for the file's own names. An empty name becomes
 * `column_<position>` and a repeated one gets `_2`, `_3`; SQL names keep only lower-case
 * letters, digits and underscores, so no request value ever reaches SQL as an identifier.
 */
export function nameColumns(
  sourceNames: readonly string[],
): Omit<DatasetColumn, 'type' | 'nullable'>[] {
  const apiNames = new Set<string>()
  const sqlNames = new Set<string>(['_row'])
  return sourceNames.map((source, index) => {
    const base = source.trim() === '' ? `column_${index + 1}` : source.trim()
    const name = uniqueName(base, apiNames, Number.POSITIVE_INFINITY)
    const sanitised =
      name
        .normalize('NFKD')
        // Accents come off (Å -> a) rather than turning into underscores.
        .replace(/\p{M}+/gu, '')
        .toLowerCase()
        .replace(/[^a-z0-9_]+/g, '_')
        .replace(/^_+|_+$/g, '')
        .slice(0, 50) || `column_${index + 1}`
    const sqlBase = /^[a-z_]/.test(sanitised) ? sanitised : `c_${sanitised}`
    return { name, source_name: source, sql_name: uniqueName(sqlBase, sqlNames, MAX_IDENTIFIER) }
  })
}

function uniqueName(base: string, taken: Set<string>, maxLength: number): string {
  let candidate = base.slice(0, maxLength)
  for (let n = 2; taken.has(candidate); n++) {
    const suffix = `_${n}`
    candidate = `${base.slice(0, maxLength - suffix.length)}${suffix}`
  }
  taken.add(candidate)
  return candidate
}

/** Always quoted, though sanitised names never need it: one rule for every identifier. */
export const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`

const INTEGER = /^[+-]?\d+$/
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(:(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$/i
const INT64_MAX = 9223372036854775807n
const INT64_MIN = -9223372036854775808n

/** `null` for a missing value; the narrowest type otherwise. */
export type ValueKind = ColumnType | null

/**
 * The kind of one raw value. Text from a CSV file is read for what it looks like; a JSON or
 * Parquet value keeps its own type, and only its strings are read for dates and timestamps
 * (`"42"` in JSON stays a string: the file said so).
 */
export function kindOf(value: unknown, fromText: boolean): ValueKind {
  if (value === null || value === undefined) return null
  switch (typeof value) {
    case 'boolean':
      return 'boolean'
    case 'number':
      return Number.isSafeInteger(value) ? 'integer' : 'number'
    case 'bigint':
      return value >= INT64_MIN && value <= INT64_MAX ? 'integer' : 'string'
    case 'string':
      break
    default:
      return value instanceof Date ? 'timestamp' : 'string'
  }
  const text = value as string
  if (fromText) {
    if (text === '') return null
    if (INTEGER.test(text)) {
      const big = BigInt(text)
      return big >= INT64_MIN && big <= INT64_MAX ? 'integer' : 'number'
    }
    if (NUMBER.test(text)) return 'number'
    const lower = text.toLowerCase()
    if (lower === 'true' || lower === 'false') return 'boolean'
  }
  if (DATE.test(text) && toDate(text) !== null) return 'date'
  if (TIMESTAMP.test(text) && toTimestamp(text) !== null) return 'timestamp'
  return 'string'
}

/** The narrowest type holding values of both types. */
export function widen(a: ValueKind, b: ValueKind): ValueKind {
  if (a === null) return b
  if (b === null || a === b) return a
  const pair = new Set([a, b])
  if (pair.has('integer') && pair.has('number')) return 'number'
  if (pair.has('date') && pair.has('timestamp')) return 'timestamp'
  return 'string'
}

/** `YYYY-MM-DD` when it names a real day (years below 100 are judged as 19xx, as Date.UTC does). */
function toDate(text: string): string | null {
  const match = DATE.exec(text)
  if (!match) return null
  return isDay(Number(match[1]), Number(match[2]), Number(match[3])) ? text : null
}

/** Days in each month of a year that is not a leap year, January first. */
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function isDay(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false
  if (day <= 28) return true
  // A table rather than a list made and searched: this runs for every date and timestamp.
  if (month !== 2) return day <= (MONTH_DAYS[month - 1] as number)
  const y = year < 100 ? year + 1900 : year
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
  return day <= (leap ? 29 : 28)
}

function toTimestamp(text: string): string | null {
  const match = TIMESTAMP.exec(text)
  if (!match) return null
  const [, y, mo, d, h, mi, , s, fraction, offset] = match
  if (!isDay(Number(y), Number(mo), Number(d))) return null
  // The common shape (UTC, at most milliseconds, a time within the day) is written out
  // directly: a Date per cell was the largest cost of loading timestamp columns.
  if (
    (offset === undefined || offset === 'Z') &&
    (fraction === undefined || fraction.length <= 4) &&
    Number(h) < 24 &&
    Number(mi) < 60 &&
    (s === undefined || Number(s) < 60) &&
    text.charCodeAt(10) !== 116
  ) {
    const millis = fraction === undefined ? '000' : fraction.slice(1).padEnd(3, '0')
    return `${y}-${mo}-${d}T${h}:${mi}:${s ?? '00'}.${millis}Z`
  }
  // A timestamp without an offset is taken as UTC, the API's time zone.
  const normalised = `${text.replace(' ', 'T')}${offset ? '' : 'Z'}`
  const date = new Date(normalised)
  if (Number.isNaN(date.getTime())) return null
  return date.toISOString()
}

/**
 * `convert` for the load, which writes every value as text for COPY. Text that PostgreSQL
 * reads as `convert` would is passed on unchanged: an integer of up to 18 digits (always a
 * bigint), a number without an exponent (PostgreSQL rounds a long fraction to the same
 * double), `true` or `false` in any case, a real day as `YYYY-MM-DD`, a UTC timestamp as
 * `YYYY-MM-DDTHH:MM[:SS[.fff]]Z`.
 * Parsing those into numbers or match arrays and writing them out again was most of the
 * cost of such cells on the way into COPY, and much of the import's garbage; the checks are
 * written out by character, which took half the time of the regular expressions they
 * replace (`/^[+-]?\d+$/`, `/^[+-]?(\d+\.?\d*|\.\d+)$/` and `/^(true|false)$/i`).
 */
export function convertForLoad(value: unknown, type: ColumnType, fromText: boolean): StoredValue {
  if (fromText && typeof value === 'string') {
    switch (type) {
      case 'integer':
        if (value.length <= 18 && isPlainInteger(value)) return value
        break
      case 'number':
        // Without an exponent: never out of a double's range while under 300 characters.
        if (value.length < 300 && isPlainNumber(value)) return value
        break
      case 'boolean':
        // `true` or `false` in any case: PostgreSQL's boolean reads them as `convert` does.
        if (isBooleanWord(value)) return value
        break
      case 'date':
        if (value.length === 10 && isIsoDay(value)) return value
        break
      case 'timestamp':
        if (isUtcTimestamp(value)) return value
        break
    }
  }
  return convert(value, type, fromText)
}

const PLUS = 43
const MINUS = 45
const DASH = MINUS
const DOT = 46

/** Digits after an optional sign. */
function isPlainInteger(text: string): boolean {
  const n = text.length
  let i = 0
  const first = text.charCodeAt(0)
  if (first === PLUS || first === MINUS) i = 1
  if (i >= n) return false
  for (; i < n; i++) {
    const digit = text.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return false
  }
  return true
}

/** Digits with a decimal point or not, after an optional sign: at least one digit. */
function isPlainNumber(text: string): boolean {
  const n = text.length
  let i = 0
  const first = text.charCodeAt(0)
  if (first === PLUS || first === MINUS) i = 1
  let digits = 0
  let dot = false
  for (; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c >= 48 && c <= 57) digits++
    else if (c === DOT && !dot) dot = true
    else return false
  }
  return digits > 0
}

/** `true` or `false`, in any case (`| 0x20` lowers an ASCII letter, and no other character). */
function isBooleanWord(text: string): boolean {
  if (text.length === 4) {
    return (
      (text.charCodeAt(0) | 0x20) === 116 &&
      (text.charCodeAt(1) | 0x20) === 114 &&
      (text.charCodeAt(2) | 0x20) === 117 &&
      (text.charCodeAt(3) | 0x20) === 101
    )
  }
  return (
    text.length === 5 &&
    (text.charCodeAt(0) | 0x20) === 102 &&
    (text.charCodeAt(1) | 0x20) === 97 &&
    (text.charCodeAt(2) | 0x20) === 108 &&
    (text.charCodeAt(3) | 0x20) === 115 &&
    (text.charCodeAt(4) | 0x20) === 101
  )
}

/** The number written by `count` digits at `at`, or -1. */
function digitsAt(text: string, at: number, count: number): number {
  let value = 0
  for (let i = at; i < at + count; i++) {
    const digit = text.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return -1
    value = value * 10 + digit
  }
  return value
}

/** The number written by two digits at `at`, or -1: a loop-free `digitsAt`, per cell. */
function twoDigitsAt(text: string, at: number): number {
  const high = text.charCodeAt(at) - 48
  const low = text.charCodeAt(at + 1) - 48
  return high >= 0 && high <= 9 && low >= 0 && low <= 9 ? high * 10 + low : -1
}

const COLON = 58

/** `YYYY-MM-DD` at the start of `text`, naming a real day. */
function isIsoDay(text: string): boolean {
  if (text.charCodeAt(4) !== DASH || text.charCodeAt(7) !== DASH) return false
  const century = twoDigitsAt(text, 0)
  const year = twoDigitsAt(text, 2)
  if (century < 0 || year < 0) return false
  return isDay(century * 100 + year, twoDigitsAt(text, 5), twoDigitsAt(text, 8))
}

/** `YYYY-MM-DDTHH:MM`, then `:SS` and `.f` to `.fff` optionally, then `Z`. */
function isUtcTimestamp(text: string): boolean {
  const length = text.length
  if (length < 17 || length > 24 || length === 18 || length === 19 || length === 21) return false
  if (text.charCodeAt(length - 1) !== 90 || text.charCodeAt(10) !== 84) return false
  if (!isIsoDay(text) || text.charCodeAt(13) !== COLON) return false
  const hour = twoDigitsAt(text, 11)
  const minute = twoDigitsAt(text, 14)
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59) return false
  if (length === 17) return true
  const second = twoDigitsAt(text, 17)
  if (text.charCodeAt(16) !== COLON || second < 0 || second > 59) return false
  if (length === 20) return true
  return text.charCodeAt(19) === 46 && digitsAt(text, 20, length - 21) >= 0
}

/** A value as the rows table takes it: text Postgres casts, or a number. */
export type StoredValue = string | number | null

export class ValueError extends Error {}

/**
 * Converts a raw value to the column's type, or throws a ValueError saying why not. Strings
 * must be storable as PostgreSQL text (no NUL).
 */
export function convert(value: unknown, type: ColumnType, fromText: boolean): StoredValue {
  if (value === null || value === undefined || (fromText && value === '')) return null
  switch (type) {
    case 'string': {
      const text =
        typeof value === 'string'
          ? value
          : value instanceof Date
            ? value.toISOString()
            : typeof value === 'object'
              ? JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))
              : String(value)
      if (text.includes('\u0000')) throw new ValueError('holds a NUL character')
      return text
    }
    case 'integer': {
      if (typeof value === 'number' && Number.isSafeInteger(value)) return value
      if (typeof value === 'bigint' && value >= INT64_MIN && value <= INT64_MAX)
        return value.toString()
      if (fromText && typeof value === 'string' && INTEGER.test(value)) {
        // Up to 15 digits a number holds it exactly (and writes "+7" and "007" as 7).
        if (value.length <= 15) return Number(value)
        const big = BigInt(value)
        if (big >= INT64_MIN && big <= INT64_MAX) return big.toString()
      }
      throw new ValueError('is not an integer')
    }
    case 'number': {
      if (typeof value === 'number' && Number.isFinite(value)) return value
      if (typeof value === 'bigint') return Number(value)
      if (fromText && typeof value === 'string' && NUMBER.test(value)) return Number(value)
      throw new ValueError('is not a number')
    }
    case 'boolean': {
      if (typeof value === 'boolean') return value ? 't' : 'f'
      if (fromText && typeof value === 'string') {
        const lower = value.toLowerCase()
        if (lower === 'true') return 't'
        if (lower === 'false') return 'f'
      }
      throw new ValueError('is not a boolean (true or false)')
    }
    case 'date': {
      if (value instanceof Date) return value.toISOString().slice(0, 10)
      const date = typeof value === 'string' ? toDate(value) : null
      if (date === null) throw new ValueError('is not a date (YYYY-MM-DD)')
      return date
    }
    case 'timestamp': {
      if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString()
      const text = typeof value === 'string' ? value : null
      const stamp =
        text === null ? null : toDate(text) ? `${text}T00:00:00.000Z` : toTimestamp(text)
      if (stamp === null) throw new ValueError('is not an ISO 8601 timestamp')
      return stamp
    }
  }
}
