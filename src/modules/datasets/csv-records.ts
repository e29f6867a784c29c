import type { SourceRecord } from './readers.js'

const QUOTE = 34
const LF = 10
const CR = 13

/** What the splitter found wrong in a record; the record is dropped up to its line end. */
const REASONS = {
  unclosed: 'opens a quote that is never closed',
  afterClosingQuote: 'has characters after a closing quote',
  quoteInUnquoted: 'has a quote inside an unquoted field',
  tooLong: 'is longer than the line-length limit',
} as const

/**
 * Splits CSV (RFC 4180: `"` quotes, `""` inside quotes, LF, CRLF or CR line ends) into
 * records, chunk by chunk, with the line each record starts on and its text as written
 * (without the line end), which the load may pass on as it is. Written here rather than
 * taken from csv-parse because the import reads every cell of files of hundreds of MB: this
 * loop allocates one string per field and one object per record, where csv-parse (with the
 * line numbers the bad-line report needs) spent three times as long per row and most of the
 * import's time. A malformed record becomes a bad line and the text up to the next line end
 * is dropped; a line with no characters at all is skipped.
 *
 * The input is UTF-8, read as bytes: the splitter looks at them one character per byte (a
 * `latin1` string, a copy of the bytes where decoding UTF-8 cost seven times as long), so a
 * record's text is its bytes, which go into the load as they are, and the line-length limit
 * counts bytes. The delimiter, quotes and line ends are ASCII, which no byte of a multi-byte
 * character is, so records split as in the text; only the fields holding such characters
 * are decoded, from the bytes.
 */
export class CsvRecordSplitter {
  readonly #delimiter: number
  readonly #maxRecordBytes: number
  /** An incomplete record from the previous chunk, parsed again with the next one. */
  #carry: Buffer | null = null
  /**
   * The carried record and the next chunk, joined in one buffer kept for the file: a new
   * one for every chunk was 64 KB outside the heap each time, which set off twice as many
   * full collections in a server-mode import.
   */
  #joined = Buffer.allocUnsafe(0)
  /** The line the carried record (or the next one) starts on. */
  #line = 1
  /** After a bad record: the rest of its line is dropped. */
  #skipping = false
  /** The previous chunk ended on CR: an LF starting this one belongs to that line end. */
  #afterCr = false
  /**
   * Fields in the last record: the next record's array is made that long at once, since
   * records of a file have the same width (one array of the right size rather than one
   * grown for 16 fields).
   */
  #width = 0

  constructor(delimiter: string, maxRecordBytes: number) {
    this.#delimiter = delimiter.charCodeAt(0)
    this.#maxRecordBytes = maxRecordBytes
  }

  /**
   * The records complete once `chunk` is added (UTF-8, checked by the reader; a character
   * may be cut between chunks, as a field ends only at ASCII); `final` when no more follows.
   */
  push(chunk: Buffer, final: boolean): SourceRecord[] {
    const bytes = this.#carry === null ? chunk : this.#join(this.#carry, chunk)
    this.#carry = null
    const s = bytes.toString('latin1')
    const out: SourceRecord[] = []
    const n = s.length
    const delimiter = this.#delimiter
    let i = 0
    if (this.#afterCr && s.charCodeAt(0) === LF) i = 1
    this.#afterCr = false
    while (i < n) {
      if (this.#skipping) {
        const end = lineEnd(s, i)
        if (end === -1) return out
        this.#skipping = false
        this.#line++
        i = this.#pastLineEnd(s, end, final)
        continue
      }
      const start = i
      const fields: string[] = new Array(this.#width)
      let count = 0
      /** Line ends inside quoted fields, so far. */
      let inner = 0
      let p = i
      let reason: string | null = null
      let incomplete = false
      let quoted = false
      for (;;) {
        if (p >= n) {
          // Text ended after a delimiter: an empty last field, or more text to come.
          if (!final) incomplete = true
          else fields[count++] = ''
          break
        }
        if (s.charCodeAt(p) === QUOTE) {
          quoted = true
          let value = ''
          let from = p + 1
          let closed = -1
          let escaped = false
          for (;;) {
            const at = s.indexOf('"', from)
            if (at === -1 || (at === n - 1 && !final)) break
            if (s.charCodeAt(at + 1) === QUOTE) {
              value += s.slice(from, at + 1)
              from = at + 2
              escaped = true
              continue
            }
            value += s.slice(from, at)
            closed = at
            break
          }
          if (closed === -1) {
            if (final) reason = REASONS.unclosed
            else incomplete = true
            break
          }
          inner += countLf(s, p, closed)
          if (!isAscii(s, p + 1, closed)) {
            value = escaped ? utf8Of(value) : bytes.toString('utf8', p + 1, closed)
          }
          fields[count++] = value
          p = closed + 1
          if (p >= n) {
            if (!final) incomplete = true
            break
          }
          const next = s.charCodeAt(p)
          if (next === delimiter) {
            p++
            continue
          }
          if (next !== LF && next !== CR) reason = REASONS.afterClosingQuote
          break
        }
        let q = p
        let c = -1
        /** Every byte of the field or'd: 0x80 is set when a multi-byte character is in it. */
        let bits = 0
        while (q < n) {
          c = s.charCodeAt(q)
          bits |= c
          if (c === delimiter || c === LF || c === CR || c === QUOTE) break
          q++
        }
        if (q >= n) {
          if (final) fields[count++] = bits > 0x7f ? bytes.toString('utf8', p, q) : s.slice(p, q)
          else incomplete = true
          p = q
          break
        }
        if (c === QUOTE) {
          reason = REASONS.quoteInUnquoted
          p = q
          break
        }
        fields[count++] = bits > 0x7f ? bytes.toString('utf8', p, q) : s.slice(p, q)
        p = q
        if (c !== delimiter) break
        p++
      }
      if (p - start > this.#maxRecordBytes || (incomplete && n - start > this.#maxRecordBytes)) {
        reason = REASONS.tooLong
      }
      if (reason !== null) {
        out.push({
          line: this.#line + inner,
          bad: { line: this.#line + inner, column: null, reason },
        })
        this.#line += inner
        this.#skipping = true
        // An open quote or an unfinished record runs to the end of what was read: none of
        // it is a record, and the skip goes on to the next line end in the next chunk.
        i = reason === REASONS.unclosed || incomplete ? n : p
        continue
      }
      if (incomplete) {
        // A copy: the caller may reuse the chunk's memory, and the next push reuses `#joined`.
        this.#carry = Buffer.from(bytes.subarray(start))
        return out
      }
      const line = this.#line
      this.#line += 1 + inner
      // A line with nothing on it is no record (CSV files often end with one).
      if (fields.length !== count) fields.length = count
      this.#width = count
      if (!(p === start && count === 1 && fields[0] === '')) {
        out.push({ line, fields, text: s.slice(start, p), quoted })
      }
      i = p >= n ? n : this.#pastLineEnd(s, p, final)
    }
    return out
  }

  #join(carry: Buffer, chunk: Buffer): Buffer {
    const length = carry.length + chunk.length
    if (this.#joined.length < length) {
      this.#joined = Buffer.allocUnsafe(Math.max(length, 2 * this.#joined.length))
    }
    carry.copy(this.#joined, 0)
    chunk.copy(this.#joined, carry.length)
    return this.#joined.subarray(0, length)
  }

  /** The position after the line end at `at` (LF, CRLF or CR). */
  #pastLineEnd(s: string, at: number, final: boolean): number {
    if (s.charCodeAt(at) === CR) {
      if (at + 1 >= s.length) {
        if (!final) this.#afterCr = true
        return at + 1
      }
      return s.charCodeAt(at + 1) === LF ? at + 2 : at + 1
    }
    return at + 1
  }
}

let scratch = Buffer.allocUnsafe(4096)

/** Bytes, one per character, decoded as the UTF-8 they are (a quoted field with `""`). */
function utf8Of(bytes: string): string {
  if (bytes.length > scratch.length) scratch = Buffer.allocUnsafe(bytes.length * 2)
  const length = scratch.write(bytes, 0, 'latin1')
  return scratch.toString('utf8', 0, length)
}

/** No byte of a multi-byte character from `from` to `to`: a quoted field, a few a record. */
function isAscii(s: string, from: number, to: number): boolean {
  let bits = 0
  for (let i = from; i < to; i++) bits |= s.charCodeAt(i)
  return bits < 0x80
}

function lineEnd(s: string, from: number): number {
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === LF || c === CR) return i
  }
  return -1
}

function countLf(s: string, from: number, to: number): number {
  let count = 0
  for (let at = s.indexOf('\n', from); at !== -1 && at < to; at = s.indexOf('\n', at + 1)) count++
  return count
}
