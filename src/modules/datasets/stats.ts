import type { ColumnStats, ColumnType, StoredValue } from './columns.js'

/** Distinct values are counted exactly up to here, then estimated. */
const EXACT_DISTINCT_MAX = 10_000
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

/** MurmurHash3 of a number's 8 bytes: numbers are counted without being written as text. */
function murmur3Number(value: number, seed = 0x9747b28c): number {
  // 0 and -0 are one value, as they are one text ("0").
  float[0] = value === 0 ? 0 : value
  let h = seed
  for (let i = 0; i < 2; i++) {
    let k = words[i] as number
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  h ^= 8
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function murmur3(text: string, seed = 0x9747b28c): number {
  let h = seed
  const length = text.length
  let i = 0
  for (; i + 1 < length; i += 2) {
    let k = (text.charCodeAt(i) & 0xffff) | ((text.charCodeAt(i + 1) & 0xffff) << 16)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  if (i < length) {
    let k = text.charCodeAt(i) & 0xffff
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
  }
  h ^= length
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Min, max, mean, nulls and distinct values of one column, gathered as its rows load. */
export class ColumnStatsCollector {
  #min: number | string | null = null
  #max: number | string | null = null
  #sum = 0
  #count = 0
  #nulls = 0
  /** Numbers are kept as numbers: one number is one text, so the count is the same. */
  #exact: Set<string | number> | null = new Set()
  readonly #sketch = new HyperLogLog()

  constructor(readonly type: ColumnType) {}

  add(value: StoredValue) {
    if (value === null) {
      this.#nulls++
      return
    }
    this.#count++
    if (typeof value === 'number') {
      this.#sketch.addHash(murmur3Number(value))
      this.#seen(value)
      this.#sum += value
      this.#bounds(value)
      return
    }
    this.#sketch.add(value)
    this.#seen(value)
    if (this.type === 'integer' || this.type === 'number') {
      // Integers beyond 2^53 arrive as text; their bounds and mean are approximate.
      const number = Number(value)
      this.#sum += number
      this.#bounds(number)
      return
    }
    if (this.type === 'boolean' && value === 't') this.#sum += 1
    this.#bounds(value)
  }

  #seen(value: string | number) {
    if (!this.#exact) return
    this.#exact.add(value)
    if (this.#exact.size > EXACT_DISTINCT_MAX) this.#exact = null
  }

  #bounds(value: number | string) {
    if (this.#min === null || value < this.#min) this.#min = value
    if (this.#max === null || value > this.#max) this.#max = value
  }

  result(): ColumnStats {
    const numeric = this.type === 'integer' || this.type === 'number'
    const shown = (value: number | string | null) =>
      this.type === 'boolean' && value !== null ? value === 't' : value
    return {
      min: shown(this.#min),
      max: shown(this.#max),
      mean:
        (numeric || this.type === 'boolean') && this.#count > 0 ? this.#sum / this.#count : null,
      null_count: this.#nulls,
      distinct_count: this.#exact ? this.#exact.size : this.#sketch.estimate(),
      distinct_exact: this.#exact !== null,
    }
  }
}
