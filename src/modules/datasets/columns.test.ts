import { describe, expect, it } from 'vitest'
import { convert, kindOf, nameColumns, ValueError, widen } from './columns.js'
import { detectDelimiter, detectEncoding, detectFormat } from './readers.js'

const bytes = (text: string) => new TextEncoder().encode(text)

describe('column names', () => {
  it('when names are unfit for SQL, then SQL names keep only safe characters and stay unique', () => {
    const named = nameColumns(['Total (€)', 'total', '', '_row', 'x'.repeat(80), 'ÅRSTALL'])
    expect(named.map((c) => c.sql_name)).toEqual([
      'total',
      'total_2',
      'column_3',
      'row',
      'x'.repeat(50),
      'arstall',
    ])
    for (const { sql_name } of named) expect(sql_name).toMatch(/^[a-z_][a-z0-9_]{0,62}$/)
  })
})

describe('type inference', () => {
  it('when text looks like a type, then that type; JSON strings stay strings unless dates', () => {
    expect(
      [
        '12',
        '-3',
        '1.5',
        '1e3',
        'TRUE',
        '2024-02-29',
        '2024-02-30',
        '2024-01-01 10:00',
        'x',
        '',
      ].map((v) => kindOf(v, true)),
    ).toEqual([
      'integer',
      'integer',
      'number',
      'number',
      'boolean',
      'date',
      'string',
      'timestamp',
      'string',
      null,
    ])
    expect(kindOf('12', false)).toBe('string')
    expect(kindOf('2024-01-01', false)).toBe('date')
    expect(kindOf(12n ** 30n, false)).toBe('string')
    expect(kindOf('99999999999999999999', true)).toBe('number')
    expect(kindOf({ a: 1 }, false)).toBe('string')
  })

  it('when types meet, then they widen to the narrowest common one', () => {
    expect(widen('integer', 'number')).toBe('number')
    expect(widen('date', 'timestamp')).toBe('timestamp')
    expect(widen('boolean', 'integer')).toBe('string')
    expect(widen(null, 'date')).toBe('date')
  })

  it('when a value does not fit its column, then a ValueError says why', () => {
    expect(() => convert('1.5', 'integer', true)).toThrow(ValueError)
    expect(() => convert('yes', 'boolean', true)).toThrow('is not a boolean')
    expect(() => convert('a\u0000b', 'string', true)).toThrow('NUL')
    expect(convert('2024-05-01T12:00:00+02:00', 'timestamp', true)).toBe('2024-05-01T10:00:00.000Z')
    expect(convert('2024-05-01', 'timestamp', true)).toBe('2024-05-01T00:00:00.000Z')
    expect(convert({ a: [1] }, 'string', false)).toBe('{"a":[1]}')
  })

  it('when integers, dates and UTC timestamps take the short path, then they read as the Date-based path reads them', () => {
    expect(convert('+0007', 'integer', true)).toBe(7)
    expect(convert('-123456789012345', 'integer', true)).toBe('-123456789012345')
    expect(convert('9223372036854775807', 'integer', true)).toBe('9223372036854775807')
    expect(() => convert('9223372036854775808', 'integer', true)).toThrow('is not an integer')
    for (const text of [
      '2024-05-01 10:00',
      '2024-05-01T10:00:05.5Z',
      '2024-05-01T10:00:05.123',
      '2024-02-29T23:59:59Z',
      '2024-05-01T24:00:00Z',
      '2024-05-01T10:00:00.123456789Z',
      '2024-05-01t10:00:00z',
    ]) {
      const viaDate = new Date(`${text.replace(' ', 'T')}${/[zZ]$/.test(text) ? '' : 'Z'}`)
      expect(convert(text, 'timestamp', true), text).toBe(viaDate.toISOString())
    }
    expect(() => convert('2023-02-29T10:00:00Z', 'timestamp', true)).toThrow(ValueError)
    expect(() => convert('2024-04-31', 'date', true)).toThrow('is not a date')
    expect(convert('2024-02-29', 'date', true)).toBe('2024-02-29')
  })
})

describe('format detection', () => {
  it('when content starts like a format, then that format, whatever else is claimed', () => {
    expect(detectFormat(bytes('PAR1....'), undefined)).toBe('parquet')
    expect(detectFormat(bytes('  \n[{"a":1}]'), undefined)).toBe('json')
    expect(detectFormat(bytes('{"a":1}\n'), undefined)).toBe('ndjson')
    expect(detectFormat(bytes('\uFEFFa,b\n1,2\n'), undefined)).toBe('csv')
    expect(detectFormat(new Uint8Array([0, 1, 2, 3]), undefined)).toBeNull()
    expect(detectFormat(bytes(''), undefined)).toBeNull()
  })

  it('when a header is split by semicolons, tabs or pipes outside quotes, then that delimiter', () => {
    expect(detectDelimiter(bytes('a;b;"c,d,e"\n1;2;3'), 'utf-8')).toBe(';')
    expect(detectDelimiter(bytes('a\tb\tc\n'), 'utf-8')).toBe('\t')
    expect(detectDelimiter(bytes('a|b\n'), 'utf-8')).toBe('|')
    expect(detectDelimiter(bytes('single\n'), 'utf-8')).toBe(',')
    expect(detectEncoding(new Uint8Array([0xff, 0xfe, 0x61, 0]))).toBe('utf-16le')
  })
})
