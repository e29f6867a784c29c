import { isUtf8 } from 'node:buffer'
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import type { AsyncBuffer, FileMetaData } from 'hyparquet'
import { CsvRecordSplitter } from './csv-records.js'

export const FORMATS = ['csv', 'json', 'ndjson', 'parquet'] as const
export type DatasetFormat = (typeof FORMATS)[number]

export const ENCODINGS = ['utf-8', 'utf-16le', 'utf-16be', 'latin1', 'windows-1252'] as const
export type TextEncoding = (typeof ENCODINGS)[number]

/** A line the import could not take: where, which column (when one is to blame), and why. */
export interface BadLine {
  line: number
  column: string | null
  reason: string
}

/** Thrown for a file that cannot be read on at all (a broken JSON array, bad encoding). */
export class UnreadableFile extends Error {
  constructor(readonly bad: BadLine) {
    super(bad.reason)
  }
}

/**
 * One record of the file: CSV rows are arrays (the first is the header), every other format
 * gives objects. `line` is the line in the file (CSV, NDJSON) or the record's position from 1
 * (JSON array elements, Parquet rows).
 */
export type SourceRecord =
  | {
      line: number
      fields: string[]
      /**
       * The record as written, without its line end, in UTF-8 bytes one character per byte
       * (a `latin1` string); `quoted`: it has a quoted field.
       */
      text: string
      quoted: boolean
    }
  | { line: number; object: Record<string, unknown> }
  | { line: number; bad: BadLine }

export interface ReadSettings {
  path: string
  format: DatasetFormat
  delimiter: string
  encoding: TextEncoding
  maxLineBytes: number
}

const PARQUET_CHUNK_ROWS = 10_000

/**
 * Bytes read at a time. A chunk's records live until the last of them is loaded, which
 * outlasts a young-generation collection or two: smaller chunks leave fewer of them to be
 * promoted to the old generation as garbage, which grew the heap by the file's size.
 */
const READ_CHUNK_BYTES = 64 * 1024

/** Records handed over together: one await per batch rather than per record. */
const RECORDS_PER_BATCH = 1000

/**
 * The file's records in order, streamed in batches: memory holds one chunk of the file,
 * never the whole of it. `read.bytes` follows how much of the file has been read.
 */
export function readRecords(
  settings: ReadSettings,
  read: ReadProgress = { bytes: 0 },
): AsyncIterable<SourceRecord[]> {
  switch (settings.format) {
    case 'csv':
      return readCsv(settings, read)
    case 'ndjson':
      return batched(readNdjson(settings, read))
    case 'json':
      return batched(readJsonArray(settings, read))
    case 'parquet':
      return batched(readParquet(settings.path, read))
  }
}

/** Bytes of the file read so far, for progress reports. */
export interface ReadProgress {
  bytes: number
}

async function* batched(records: AsyncIterable<SourceRecord>): AsyncGenerator<SourceRecord[]> {
  let batch: SourceRecord[] = []
  for await (const record of records) {
    batch.push(record)
    if (batch.length >= RECORDS_PER_BATCH) {
      yield batch
      batch = []
    }
  }
  if (batch.length > 0) yield batch
}

/** Text of the file decoded by its encoding; bytes that are not valid in it fail the read. */
async function* decodedChunks(settings: ReadSettings, read: ReadProgress): AsyncGenerator<string> {
  const bytes = createReadStream(settings.path, { highWaterMark: READ_CHUNK_BYTES })
  const decoder = new TextDecoder(settings.encoding, { fatal: true, ignoreBOM: false })
  let lines = 1
  try {
    for await (const chunk of bytes as AsyncIterable<Buffer>) {
      let text: string
      try {
        text = decoder.decode(chunk, { stream: true })
      } catch {
        throw notText(
          settings.encoding,
          lines + countNewlines(chunk.subarray(0, firstInvalidUtf8(chunk))),
        )
      }
      read.bytes += chunk.length
      lines += countNewlines(chunk)
      if (text.length > 0) yield text
    }
    let rest: string
    try {
      rest = decoder.decode()
    } catch {
      // The file ends inside a character.
      throw notText(settings.encoding, lines)
    }
    if (rest.length > 0) yield rest
  } finally {
    bytes.destroy()
  }
}

function notText(encoding: TextEncoding, line: number): UnreadableFile {
  return new UnreadableFile({
    line,
    column: null,
    reason: `is not valid ${encoding} text; give the file's encoding`,
  })
}

/**
 * The file as UTF-8 in whole characters, as the CSV splitter reads it. A UTF-8 file is
 * checked (natively, a fortieth of the time decoding took) and its bytes passed on as they
 * are; a file in another encoding is decoded and encoded as UTF-8. Bytes that are not valid
 * in the encoding fail the read.
 */
async function* utf8Chunks(settings: ReadSettings, read: ReadProgress): AsyncGenerator<Buffer> {
  if (settings.encoding !== 'utf-8') {
    for await (const text of decodedChunks(settings, read)) yield Buffer.from(text, 'utf8')
    return
  }
  const stream = createReadStream(settings.path, { highWaterMark: READ_CHUNK_BYTES })
  let lines = 1
  let first = true
  /** The first bytes of a character that the last chunk ended inside. */
  let rest: Buffer | null = null
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const bytes: Buffer = rest === null ? chunk : Buffer.concat([rest, chunk])
      const end = wholeCharacters(bytes)
      if (!isUtf8(end === bytes.length ? bytes : bytes.subarray(0, end))) {
        throw notText(
          settings.encoding,
          lines + countNewlines(bytes.subarray(0, firstInvalidUtf8(bytes))),
        )
      }
      // A copy: the stream's chunk may share its memory with the next one.
      rest = end < bytes.length ? Buffer.from(bytes.subarray(end)) : null
      let start = 0
      if (first && end > 0) {
        first = false
        if (end >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3
      }
      read.bytes += chunk.length
      lines += countNewlines(chunk)
      if (end > start)
        yield start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end)
    }
    // The file ends inside a character.
    if (rest !== null) throw notText(settings.encoding, lines)
  } finally {
    stream.destroy()
  }
}

/** The length of the bytes' whole UTF-8 characters: all but a character cut off at the end. */
function wholeCharacters(bytes: Uint8Array): number {
  const n = bytes.length
  for (let back = 1; back <= 3 && back <= n; back++) {
    const byte = bytes[n - back] as number
    if (byte < 0x80) return n
    if (byte >= 0xc0) {
      const size = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2
      return size > back ? n - back : n
    }
  }
  return n
}

function decodedText(settings: ReadSettings, read: ReadProgress): Readable {
  return Readable.from(decodedChunks(settings, read), { objectMode: false, encoding: 'utf8' })
}

function countNewlines(bytes: Uint8Array): number {
  let count = 0
  for (let at = bytes.indexOf(10); at !== -1; at = bytes.indexOf(10, at + 1)) count++
  return count
}

/** Where UTF-8 decoding of a chunk failed, to name the line; approximate at chunk edges. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number
    const extra =
      byte < 0x80
        ? 0
        : byte >= 0xc2 && byte < 0xe0
          ? 1
          : byte >= 0xe0 && byte < 0xf0
            ? 2
            : byte >= 0xf0 && byte < 0xf5
              ? 3
              : -1
    if (extra < 0) return i
    for (let k = 1; k <= extra; k++) {
      const next = bytes[i + k]
      if (next === undefined) return i
      if ((next & 0xc0) !== 0x80) return i
    }
    i += extra
  }
  return bytes.length
}

async function* readCsv(
  settings: ReadSettings,
  read: ReadProgress,
): AsyncGenerator<SourceRecord[]> {
  const splitter = new CsvRecordSplitter(settings.delimiter, settings.maxLineBytes)
  for await (const bytes of utf8Chunks(settings, read)) {
    const records = splitter.push(bytes, false)
    if (records.length > 0) yield records
  }
  const rest = splitter.push(Buffer.alloc(0), true)
  if (rest.length > 0) yield rest
}

async function* readNdjson(
  settings: ReadSettings,
  read: ReadProgress,
): AsyncGenerator<SourceRecord> {
  const lines = createInterface({
    input: decodedText(settings, read),
    crlfDelay: Number.POSITIVE_INFINITY,
  })
  let line = 0
  for await (const raw of lines) {
    line++
    const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw
    if (text.trim() === '') continue
    if (Buffer.byteLength(text) > settings.maxLineBytes) {
      yield { line, bad: { line, column: null, reason: 'is longer than the line-length limit' } }
      continue
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      yield { line, bad: { line, column: null, reason: 'is not valid JSON' } }
      continue
    }
    if (!isPlainObject(value)) {
      yield { line, bad: { line, column: null, reason: 'is not a JSON object' } }
      continue
    }
    yield { line, object: value }
  }
}

async function* readJsonArray(
  settings: ReadSettings,
  read: ReadProgress,
): AsyncGenerator<SourceRecord> {
  // Loaded with the first JSON array, like the Parquet reader: most processes never read one.
  const { default: streamArray } = await import('stream-json/streamers/stream-array.js')
  const elements = decodedText(settings, read).pipe(streamArray.withParserAsStream())
  let position = 0
  try {
    for await (const { value } of elements as AsyncIterable<{ value: unknown }>) {
      position++
      if (!isPlainObject(value)) {
        yield {
          line: position,
          bad: { line: position, column: null, reason: 'is not a JSON object' },
        }
      } else {
        yield { line: position, object: value }
      }
    }
  } catch (error) {
    if (error instanceof UnreadableFile) throw error
    throw new UnreadableFile({
      line: position + 1,
      column: null,
      reason: `is not valid JSON (${(error as Error).message.slice(0, 200)})`,
    })
  }
}

async function* readParquet(path: string, read: ReadProgress): AsyncGenerator<SourceRecord> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } = await import(
    'hyparquet'
  )
  let file: AsyncBuffer
  let metadata: FileMetaData
  try {
    file = await asyncBufferFromFile(path)
    metadata = await parquetMetadataAsync(file)
  } catch (error) {
    throw new UnreadableFile({
      line: 0,
      column: null,
      reason: `is not a readable Parquet file (${(error as Error).message.slice(0, 200)})`,
    })
  }
  const total = Number(metadata.num_rows)
  for (let start = 0; start < total; start += PARQUET_CHUNK_ROWS) {
    let rows: Record<string, unknown>[]
    try {
      rows = await parquetReadObjects({
        file,
        metadata,
        rowStart: start,
        rowEnd: Math.min(total, start + PARQUET_CHUNK_ROWS),
      })
    } catch (error) {
      throw new UnreadableFile({
        line: start + 1,
        column: null,
        reason: `could not be decoded (${(error as Error).message.slice(0, 200)})`,
      })
    }
    read.bytes = Math.round((file.byteLength * Math.min(total, start + PARQUET_CHUNK_ROWS)) / total)
    for (const [offset, row] of rows.entries()) {
      yield { line: start + offset + 1, object: row }
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The format a file's first bytes show, or null for none this service reads. */
export function detectFormat(
  head: Uint8Array,
  encoding: TextEncoding | undefined,
): DatasetFormat | null {
  if (head.length >= 4 && Buffer.from(head.subarray(0, 4)).toString('latin1') === 'PAR1') {
    return 'parquet'
  }
  const text = decodeHead(head, encoding ?? detectEncoding(head))
  if (text === null) return null
  const start = text.replace(/^\uFEFF/, '').trimStart()
  if (start.startsWith('[')) return 'json'
  if (start.startsWith('{')) return 'ndjson'
  // Text without control characters other than tab, CR and LF reads as CSV.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for binary content.
  if (start.length > 0 && !/[\u0000-\u0008\u000E-\u001F]/.test(start)) return 'csv'
  return null
}

/** UTF-16 by its byte-order mark; everything else is read as UTF-8 unless told otherwise. */
export function detectEncoding(head: Uint8Array): TextEncoding {
  if (head[0] === 0xff && head[1] === 0xfe) return 'utf-16le'
  if (head[0] === 0xfe && head[1] === 0xff) return 'utf-16be'
  return 'utf-8'
}

function decodeHead(head: Uint8Array, encoding: TextEncoding): string | null {
  // The head may end inside a character: decode leniently, then judge what came out.
  const text = new TextDecoder(encoding, { fatal: false }).decode(head)
  const broken = (text.match(/\uFFFD/g) ?? []).length
  return broken > 4 ? null : text
}

/** The delimiter that splits the header line most often, outside quotes; a comma otherwise. */
export function detectDelimiter(head: Uint8Array, encoding: TextEncoding): string {
  const text = new TextDecoder(encoding).decode(head).replace(/^\uFEFF/, '')
  const candidates = [',', ';', '\t', '|']
  const counts = new Map(candidates.map((c) => [c, 0]))
  let quoted = false
  for (const char of text) {
    if (char === '"') quoted = !quoted
    else if (!quoted && (char === '\n' || char === '\r')) break
    else if (!quoted && counts.has(char)) counts.set(char, (counts.get(char) as number) + 1)
  }
  let best = ','
  for (const candidate of candidates) {
    if ((counts.get(candidate) as number) > (counts.get(best) as number)) best = candidate
  }
  return best
}
