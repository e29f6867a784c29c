import { describe, expect, it } from 'vitest'
import {
  type ColumnType,
  convert,
  convertForLoad,
  kindOf,
  nameColumns,
  ValueError,
  widen,
} from './columns.js'
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

describe('conversion for the load', () => {
  /** What the load's short path passed on before it was written out by character. */
  const passedOn: Partial<Record<ColumnType, (text: string) => boolean>> = {
    integer: (text) => text.length <= 18 && /^[+-]?\d+$/.test(text),
    number: (text) => text.length < 300 && /^[+-]?(\d+\.?\d*|\.\d+)$/.test(text),
    boolean: (text) => text.length <= 5 && /^(true|false)$/i.test(text),
  }
  const outcome = (run: () => unknown) => {
    try {
      return run()
    } catch (error) {
      return error instanceof ValueError ? `ValueError ${error.message}` : error
    }
  }

  it('when text is near a number or a boolean, then it is passed on or converted exactly as the regular expressions decided', () => {
    const alphabet = [
      '0',
      '7',
      '+',
      '-',
      '.',
      'e',
      'E',
      ' ',
      't',
      'R',
      'u',
      'E',
      'f',
      'A',
      'l',
      's',
      'x',
      '٣',
      'ſ',
    ]
    const texts = [
      '',
      '+',
      '-',
      '.',
      '+.',
      '-.5',
      '5.',
      '1.2.3',
      '1e3',
      '0x10',
      'TRUE',
      'fAlSe',
      'truE ',
      'true\n',
      '1\n',
    ]
    texts.push(
      '9'.repeat(18),
      `-${'9'.repeat(17)}`,
      `+${'9'.repeat(18)}`,
      `${'1'.repeat(299)}`,
      `${'1'.repeat(300)}`,
    )
    // Every string of up to three characters of the alphabet, and random longer ones.
    let level = ['']
    for (let length = 1; length <= 3; length++) {
      level = level.flatMap((text) => alphabet.map((char) => text + char))
      texts.push(...level)
    }
    let seed = 7
    for (let k = 0; k < 5000; k++) {
      let text = ''
      const length = 4 + (k % 6)
      for (let i = 0; i < length; i++) {
        seed = (seed * 1103515245 + 12345) % 2147483648
        text += alphabet[seed % alphabet.length]
      }
      texts.push(text)
    }
    for (const [type, passes] of Object.entries(passedOn) as [
      ColumnType,
      (t: string) => boolean,
    ][]) {
      for (const text of texts) {
        const expected = passes(text) ? text : outcome(() => convert(text, type, true))
        expect(
          outcome(() => convertForLoad(text, type, true)),
          `${type} ${JSON.stringify(text)}`,
        ).toEqual(expected)
      }
    }
  })

  it('when dates and timestamps are near the short path, then it takes exactly the real days and UTC times', () => {
    for (const text of [
      '2024-02-29',
      '2023-02-29',
      '1900-02-29',
      '2000-02-29',
      '0096-02-29',
      '2024-04-31',
      '2024-04-30',
      '2024-13-01',
      '2024-00-10',
      '2024-01-00',
      '2024-1-01',
      '20x4-01-01',
      '2024-12-31',
      '2024-05-01T10:00Z',
      '2024-05-01T10:00:05Z',
      '2024-05-01T10:00:05.5Z',
      '2024-05-01T10:00:05.123Z',
      '2024-05-01T24:00Z',
      '2024-05-01T23:60Z',
      '2024-05-01T23:59:60Z',
      '2024-05-01T10:00:05.Z',
      '2024-05-01t10:00Z',
      '2024-05-01T10:00z',
      '2023-02-29T10:00Z',
      '2024-02-29T10:00:00.1234Z',
    ]) {
      for (const type of ['date', 'timestamp'] as const) {
        const converted = outcome(() => convert(text, type, true))
        const loaded = outcome(() => convertForLoad(text, type, true))
        // Passed on as written, or converted: either way what PostgreSQL stores is the same.
        if (loaded !== text) expect(loaded, `${type} ${text}`).toEqual(converted)
        else expect(typeof converted, `${type} ${text}`).toBe('string')
        if (type === 'timestamp' && typeof converted === 'string' && loaded === text) {
          expect(new Date(text).toISOString(), text).toBe(converted)
        }
      }
    }
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
