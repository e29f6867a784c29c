import { describe, expect, it } from 'vitest'
import { CsvRecordSplitter } from './csv-records.js'

/** A record's text as the splitter gives it: its UTF-8 bytes, one character per byte. */
const utf8Bytes = (text: string) => Buffer.from(text, 'utf8').toString('latin1')

/** Splits `text` fed as UTF-8 in pieces of `size` bytes (the whole at once when absent). */
function splitWithText(text: string, size?: number, delimiter = ',', max = 1000) {
  const splitter = new CsvRecordSplitter(delimiter, max)
  const bytes = Buffer.from(text, 'utf8')
  const step = size ?? (bytes.length || 1)
  const records = []
  for (let at = 0; at < bytes.length; at += step) {
    records.push(...splitter.push(bytes.subarray(at, at + step), false))
  }
  records.push(...splitter.push(Buffer.alloc(0), true))
  return records
}

/** The records without the text they were split from (its own test checks that). */
function split(text: string, size?: number, delimiter?: string, max?: number) {
  return splitWithText(text, size, delimiter, max).map((record) => {
    if (!('text' in record)) return record
    const { text: _text, quoted: _quoted, ...rest } = record
    return rest
  })
}

const TRICKY =
  'id;note\r\n1;"a; b"\r\n\r\n2;"line one\r\nline two"\r\n3;"say ""hi"""\r\n4;\r\n5;last'

describe('splitting CSV into records', () => {
  it('when cells hold quoted delimiters, line ends and quotes, then each record is whole and starts on its line', () => {
    expect(split(TRICKY, undefined, ';')).toEqual([
      { line: 1, fields: ['id', 'note'] },
      { line: 2, fields: ['1', 'a; b'] },
      { line: 4, fields: ['2', 'line one\r\nline two'] },
      { line: 6, fields: ['3', 'say "hi"'] },
      { line: 7, fields: ['4', ''] },
      { line: 8, fields: ['5', 'last'] },
    ])
  })

  it('when a record is split, then it keeps its text as written, without the line end, and whether it quotes', () => {
    const records = splitWithText(TRICKY, undefined, ';')
    expect(records.map((r) => ('text' in r ? [r.text, r.quoted] : r))).toEqual([
      ['id;note', false],
      ['1;"a; b"', true],
      ['2;"line one\r\nline two"', true],
      ['3;"say ""hi"""', true],
      ['4;', false],
      ['5;last', false],
    ])
    for (const size of [1, 2, 3, 5, 7, 13]) {
      expect(splitWithText(TRICKY, size, ';')).toEqual(records)
    }
  })

  it('when the text arrives in pieces of any size, then the records are the same', () => {
    const whole = split(TRICKY, undefined, ';')
    for (const size of [1, 2, 3, 5, 7, 13]) expect(split(TRICKY, size, ';')).toEqual(whole)
  })

  it('when lines end with a lone CR, then they are lines too', () => {
    expect(split('a,b\r1,2\r3,4', 1)).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['1', '2'] },
      { line: 3, fields: ['3', '4'] },
    ])
  })

  it('when a quote is misplaced, then that line is bad and the next one is read', () => {
    const text = 'a,b\n1,x"y\n2,"q"z\n3,ok\n4,"never closed\n5,5\n'
    for (const size of [text.length, 1, 4]) {
      expect(split(text, size)).toEqual([
        { line: 1, fields: ['a', 'b'] },
        { line: 2, bad: { line: 2, column: null, reason: 'has a quote inside an unquoted field' } },
        { line: 3, bad: { line: 3, column: null, reason: 'has characters after a closing quote' } },
        { line: 4, fields: ['3', 'ok'] },
        { line: 5, bad: { line: 5, column: null, reason: 'opens a quote that is never closed' } },
      ])
    }
  })

  it('when a record is longer than the limit, then it is one bad line and the next is read, whatever the pieces', () => {
    const text = `a,b\n1,${'x'.repeat(5000)}\n2,y\n`
    for (const size of [text.length, 64, 999]) {
      expect(split(text, size)).toEqual([
        { line: 1, fields: ['a', 'b'] },
        { line: 2, bad: { line: 2, column: null, reason: 'is longer than the line-length limit' } },
        { line: 3, fields: ['2', 'y'] },
      ])
    }
  })

  it('when fields hold characters past ASCII, then they are decoded and the text stays UTF-8 bytes, whatever the pieces', () => {
    const text = 'city,note\nTromsø,"ø ""å"" €"\nBodø,😀\nOslo,plain\n'
    const whole = splitWithText(text)
    expect(whole).toEqual([
      { line: 1, fields: ['city', 'note'], text: 'city,note', quoted: false },
      {
        line: 2,
        fields: ['Tromsø', 'ø "å" €'],
        text: utf8Bytes('Tromsø,"ø ""å"" €"'),
        quoted: true,
      },
      { line: 3, fields: ['Bodø', '😀'], text: utf8Bytes('Bodø,😀'), quoted: false },
      { line: 4, fields: ['Oslo', 'plain'], text: 'Oslo,plain', quoted: false },
    ])
    // Pieces of one byte cut every multi-byte character in two.
    for (const size of [1, 2, 3, 5]) expect(splitWithText(text, size)).toEqual(whole)
    // Without a line end at the end too.
    expect(split('a\nø', 1)).toEqual([
      { line: 1, fields: ['a'] },
      { line: 2, fields: ['ø'] },
    ])
  })

  it('when a bad line holds characters past ASCII, then the next line is decoded all the same', () => {
    expect(split('a,b\n1,ø"ø\nå,ok\n', 1)).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, bad: { line: 2, column: null, reason: 'has a quote inside an unquoted field' } },
      { line: 3, fields: ['å', 'ok'] },
    ])
  })

  it('when a record is longer than the limit in bytes, though not in characters, then it is a bad line', () => {
    expect(split('a\nøøø\nøø\n', undefined, ',', 5)).toEqual([
      { line: 1, fields: ['a'] },
      { line: 2, bad: { line: 2, column: null, reason: 'is longer than the line-length limit' } },
      { line: 3, fields: ['øø'] },
    ])
  })

  it('when the last field is empty or the text ends without a line end, then the field is kept', () => {
    expect(split('a,b\n1,')).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['1', ''] },
    ])
  })

  it('when a record is wider or narrower than the one before, then it has exactly its own fields', () => {
    const text = 'a,b,c\n1,2\n3,4,5,6\n7\n8,9,10\n'
    for (const size of [text.length, 1, 3]) {
      const records = split(text, size)
      expect(records).toStrictEqual([
        { line: 1, fields: ['a', 'b', 'c'] },
        { line: 2, fields: ['1', '2'] },
        { line: 3, fields: ['3', '4', '5', '6'] },
        { line: 4, fields: ['7'] },
        { line: 5, fields: ['8', '9', '10'] },
      ])
      // No holes: every field is a string of its own.
      for (const record of records)
        if ('fields' in record)
          expect(Object.keys(record.fields)).toHaveLength(record.fields.length)
    }
  })
})
