import { type ColumnStats, type DatasetColumn, quoteIdent, type StoredValue } from './columns.js'

/** 2^12 registers: about 1.6 % standard error in 4 KiB per column. */
const HLL_BITS = 12
const HLL_REGISTERS = 1 << HLL_BITS

/**
 * HyperLogLog (Flajolet et al. 2007) over a 32-bit MurmurHash3 of the value's text. Written
 * here because the npm packages for it either need a native hash module or are unmaintained,
 * and the whole algorithm is these few lines.
 */
class HyperLogLog {
  readonly #registers = new Uint8Array(HLL_REGISTERS)

  add(text: string) {
    this.addHash(murmur3(text))
  }

  addHash(hash: number) {
    const index = hash >>> (32 - HLL_BITS)
    const rest = (hash << HLL_BITS) | (1 << (HLL_BITS - 1))
    const rank = Math.clz32(rest) + 1
    if (rank > (this.#registers[index] as number)) this.#registers[index] = rank
  }

  estimate(): number {
    let sum = 0
    let zeros = 0
    for (const register of this.#registers) {
      sum += 2 ** -register
      if (register === 0) zeros++
    }
    const alpha = 0.7213 / (1 + 1.079 / HLL_REGISTERS)
    const raw = (alpha * HLL_REGISTERS * HLL_REGISTERS) / sum
    // Small ranges: linear counting is the better estimate while registers are still empty.
    if (raw <= 2.5 * HLL_REGISTERS && zeros > 0) {
      return Math.round(HLL_REGISTERS * Math.log(HLL_REGISTERS / zeros))
    }
    return Math.round(raw)
  }
}

const float = new Float64Array(1)
const words = new Uint32Array(float.buffer)

/** MurmurHash3's scrambling of one 32-bit block before it enters the hash. */
function scramble(block: number): number {
  const k = Math.imul(block, 0xcc9e2d51)
  return Math.imul((k << 15) | (k >>> 17), 0x1b873593)
}

/** MurmurHash3's mixing of one scrambled block into the running hash. */
function mixBlock(h: number, block: number): number {
  const mixed = h ^ scramble(block)
  return (Math.imul((mixed << 13) | (mixed >>> 19), 5) + 0xe6546b64) | 0
}

/** MurmurHash3's finalisation, which spreads the last bits over the whole hash. */
function finalise(h: number, length: number): number {
  let f = h ^ length
  f ^= f >>> 16
  f = Math.imul(f, 0x85ebca6b)
  f ^= f >>> 13
  f = Math.imul(f, 0xc2b2ae35)
  f ^= f >>> 16
  return f >>> 0
}

/** MurmurHash3 of a number's 8 bytes: numbers are counted without being written as text. */
function murmur3Number(value: number, seed = 0x9747b28c): number {
  // 0 and -0 are one value, as they are one text ("0").
  float[0] = value === 0 ? 0 : value
  return finalise(mixBlock(mixBlock(seed, words[0] as number), words[1] as number), 8)
}

function murmur3(text: string, seed = 0x9747b28c): number {
  let h = seed
  const length = text.length
  let i = 0
  for (; i + 1 < length; i += 2) {
    h = mixBlock(h, (text.charCodeAt(i) & 0xffff) | ((text.charCodeAt(i + 1) & 0xffff) << 16))
  }
  if (i < length) h ^= scramble(text.charCodeAt(i) & 0xffff)
  return finalise(h, length)
}

/**
 * The one per-cell statistic left in JavaScript: a HyperLogLog sketch of the column's values
 * as they load (a hash per cell, in the columns `RowSketches` still hashes). Everything else
 * is computed in SQL after the load (see `summaryQuery`): counting, bounds and means per cell
 * in JavaScript, with an exact set of up to 10,000 values per column, were a tenth of an
 * import's main-thread time and much of its garbage. The sketch stays here because PostgreSQL has no cheap approximate distinct
 * count: ANALYZE's sample estimate was 10 % off on a column of 150,000 values over 200,000
 * rows, where the sketch is within 2 %. Numbers read from a CSV file arrive as their text, so
 * `7` and `007` count twice in the estimate; exact counts (below) compare typed values.
 */
export class DistinctSketch {
  readonly #sketch = new HyperLogLog()

  add(value: StoredValue) {
    if (value === null) return
    if (typeof value === 'number') this.#sketch.addHash(murmur3Number(value))
    else this.#sketch.add(value)
  }

  estimate(): number {
    return this.#sketch.estimate()
  }
}

/**
 * Columns with up to this many distinct values get an exact count (the row store adds a
 * margin for the sketch's error).
 */
export const EXACT_DISTINCT_MAX = 10_000

/**
 * Rows whose every cell is hashed. After them, a column whose sketch has seen at most
 * EXACT_DISTINCT_MAX values is not hashed any more: it will be counted exactly in the database
 * anyway, and its sketch was there only to tell whether it has few values (7 of the ingest
 * bench's 10 columns): the import's main-thread CPU without a database, 0.96 of hashing them
 * all.
 */
export const SKETCH_EVERY_CELL_ROWS = 50_000

/** The distinct-count sketches of a load's columns, fed a row at a time. */
export class RowSketches {
  readonly #sketches: DistinctSketch[]
  /** The columns still hashed, by position. */
  #hashed: number[]
  #rows = 0

  constructor(width: number) {
    this.#sketches = Array.from({ length: width }, () => new DistinctSketch())
    this.#hashed = this.#sketches.map((_, i) => i)
  }

  add(row: readonly StoredValue[]) {
    const hashed = this.#hashed
    for (let k = 0; k < hashed.length; k++) {
      const i = hashed[k] as number
      ;(this.#sketches[i] as DistinctSketch).add(row[i] as StoredValue)
    }
    if (++this.#rows === SKETCH_EVERY_CELL_ROWS) {
      this.#hashed = hashed.filter(
        (i) => (this.#sketches[i] as DistinctSketch).estimate() > EXACT_DISTINCT_MAX,
      )
    }
  }

  /**
   * Per column, the sketch's estimate, or null for a column no longer hashed, which the
   * database must count. A column of few values in the first rows and many later is counted
   * there too: exactly, at the cost of a larger grouping.
   */
  estimates(): (number | null)[] {
    return this.#sketches.map((sketch, i) => (this.#hashed.includes(i) ? sketch.estimate() : null))
  }
}

/** One SELECT over the rows table for the figures of every column, all as text. */
export function summaryQuery(table: string, columns: readonly DatasetColumn[]): string {
  const parts = ['count(*)::text']
  for (const column of columns) {
    const c = quoteIdent(column.sql_name)
    parts.push(`count(${c})::text`)
    switch (column.type) {
      case 'integer':
        parts.push(`min(${c})::text`, `max(${c})::text`, `avg(${c})::float8::text`)
        break
      case 'number':
        parts.push(`min(${c})::text`, `max(${c})::text`, `avg(${c})::text`)
        break
      case 'boolean':
        parts.push(`bool_and(${c})::text`, `bool_or(${c})::text`, `avg(${c}::int)::float8::text`)
        break
      case 'string':
        // Code point order, as JavaScript compares strings, not the database's collation.
        parts.push(`min(${c} COLLATE "C")`, `max(${c} COLLATE "C")`, 'NULL')
        break
      case 'date':
        parts.push(`min(${c})::text`, `max(${c})::text`, 'NULL')
        break
      case 'timestamp':
        parts.push(utcText(`min(${c})`), utcText(`max(${c})`), 'NULL')
        break
    }
  }
  return `SELECT ${aliased(parts)} FROM ${table}`
}

/** Each figure under a name of its own, so that the row keeps them all, in order. */
const aliased = (figures: string[]) => figures.map((figure, i) => `${figure} AS f${i}`).join(', ')

/** As the API writes timestamps: UTC ISO 8601 with milliseconds. */
const utcText = (value: string) =>
  `to_char(${value} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`

/**
 * Exact distinct counts of some columns in one scan: a grouping set per column (hashed by the
 * planner when the groups are few), counted per column afterwards. A column's value is null
 * in the other columns' groups, and count() skips nulls, as count(DISTINCT) does.
 */
export function distinctQuery(table: string, columns: readonly DatasetColumn[]): string {
  const names = columns.map((column) => quoteIdent(column.sql_name))
  return (
    `SELECT ${aliased(names.map((n) => `count(${n})::text`))} FROM ` +
    `(SELECT ${names.join(', ')} FROM ${table} GROUP BY GROUPING SETS (${names.map((n) => `(${n})`).join(', ')})) AS groups`
  )
}

/** A column's statistics from its figures in the summary row (`at`: its first figure). */
export function columnStats(
  column: DatasetColumn,
  figures: readonly (string | null)[],
  at: number,
  distinct: { count: number; exact: boolean },
): ColumnStats {
  const rows = Number(figures[0])
  const count = Number(figures[at])
  const mean = figures[at + 3] ?? null
  const shown = (value: string | null | undefined) => {
    if (value === null || value === undefined) return null
    if (column.type === 'integer' || column.type === 'number') return Number(value)
    if (column.type === 'boolean') return value === 'true'
    return value
  }
  return {
    min: shown(figures[at + 1]),
    max: shown(figures[at + 2]),
    mean: mean === null ? null : Number(mean),
    null_count: rows - count,
    distinct_count: distinct.count,
    distinct_exact: distinct.exact,
  }
}
