import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, type TestApp } from '../../../test/helpers.js'
import { type ColumnType, convert } from './columns.js'
import { DatasetImportFailed } from './errors.js'
import { type ImportSettings, importFile } from './importer.js'
import { createRowStore, type RowStore, rowsTable } from './row-store.js'

let t: TestApp
let store: RowStore
let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'importer-test-'))
  t = await buildTestApp({ DATA_DIR: dir })
  store = createRowStore(t.database)
})
afterAll(async () => {
  await t.close()
  await rm(dir, { recursive: true, force: true })
})

/** More rows than the import learns its types from, so later rows stream against them. */
const MANY = 7_000

function settings(content: string, overrides: Partial<ImportSettings> = {}): ImportSettings {
  const path = join(dir, `${randomUUID()}.csv`)
  writeFileSync(path, content)
  return {
    path,
    format: 'csv',
    delimiter: ',',
    encoding: 'utf-8',
    maxLineBytes: 65_536,
    onError: 'fail',
    maxColumns: 500,
    ...overrides,
  }
}

function csv(rows: number, line: (i: number) => string, header = 'n,v') {
  const lines = [header]
  for (let i = 1; i <= rows; i++) lines.push(line(i))
  return `${lines.join('\n')}\n`
}

async function tableExists(datasetId: string) {
  const result = await t.database.db.execute(sql`SELECT to_regclass(${rowsTable(datasetId)}) AS t`)
  return (result as unknown as { rows: { t: unknown }[] }).rows[0]?.t !== null
}

async function rowsOf(datasetId: string, where: string) {
  const result = await t.database.db.execute(
    // bigint arrives as text from node-postgres: n is read as an int in both modes.
    sql.raw(`SELECT n::int AS n, v FROM ${rowsTable(datasetId)} WHERE ${where} ORDER BY _row`),
  )
  return (result as unknown as { rows: Record<string, unknown>[] }).rows
}

describe('importing in one pass', () => {
  it('when values after the learning rows need a wider type, then the types come from every row and every row is stored', async () => {
    const id = randomUUID()
    const content = csv(MANY, (i) =>
      i === MANY - 1 ? `${i},not a number` : i === MANY ? `${i},2.5` : `${i},${i}`,
    )
    const outcome = await importFile(store, id, settings(content))
    expect(outcome.rowCount).toBe(MANY)
    expect(outcome.columns.map((c) => [c.name, c.type])).toEqual([
      ['n', 'integer'],
      ['v', 'string'],
    ])
    expect(await rowsOf(id, `_row >= ${MANY - 1}`)).toMatchObject([
      { n: MANY - 1, v: 'not a number' },
      { n: MANY, v: '2.5' },
    ])
    await store.dropTable(id)
  })

  it('when a column first shows nulls after the learning rows, then it is nullable and keeps its type', async () => {
    const id = randomUUID()
    const outcome = await importFile(
      store,
      id,
      settings(csv(MANY, (i) => (i === MANY ? `${i},` : `${i},${i / 2}`))),
    )
    expect(outcome.columns[1]).toMatchObject({ type: 'number', nullable: true })
    expect(outcome.columns[1]?.stats).toMatchObject({ null_count: 1 })
    expect(await rowsOf(id, 'v IS NULL')).toHaveLength(1)
    await store.dropTable(id)
  })

  it('when a column is empty in the learning rows and holds numbers later, then it is typed by them', async () => {
    const id = randomUUID()
    const outcome = await importFile(
      store,
      id,
      settings(csv(MANY, (i) => (i > 6_000 ? `${i},${i}` : `${i},`))),
    )
    expect(outcome.columns[1]).toMatchObject({ type: 'integer', nullable: true })
    await store.dropTable(id)
  })

  it('when a bad line comes after rows were loaded and on_error=fail, then the import fails, names it, and drops the table', async () => {
    const id = randomUUID()
    const content = csv(MANY, (i) => (i === 6_500 || i === 6_600 ? `${i}` : `${i},${i}`))
    const failure = await importFile(store, id, settings(content)).catch((error) => error)
    expect(failure).toBeInstanceOf(DatasetImportFailed)
    expect((failure as InstanceType<typeof DatasetImportFailed>).extensions).toEqual({
      bad_line_count: 2,
      bad_lines: [
        { line: 6_501, column: null, reason: 'has 1 fields; the header has 2' },
        { line: 6_601, column: null, reason: 'has 1 fields; the header has 2' },
      ],
    })
    expect(await tableExists(id)).toBe(false)
  })

  it('when a declared column meets a bad value after the learning rows and on_error=skip, then that line alone is left out', async () => {
    const id = randomUUID()
    const content = csv(MANY, (i) => (i === 6_500 ? `${i},x` : `${i},${i}`))
    const outcome = await importFile(
      store,
      id,
      settings(content, {
        onError: 'skip',
        schema: [
          { name: 'n', type: 'integer' },
          { name: 'v', type: 'integer' },
        ],
      }),
    )
    expect(outcome.rowCount).toBe(MANY - 1)
    expect(outcome.skipped).toEqual({
      count: 1,
      lines: [{ line: 6_501, column: 'v', reason: 'is not an integer' }],
    })
    await store.dropTable(id)
  })

  it('when the file turns out not to be UTF-8 after rows were loaded, then the import fails and drops the table', async () => {
    const id = randomUUID()
    const path = join(dir, `${randomUUID()}.csv`)
    // Past the reader's first megabyte, so rows are already in the table when it fails.
    const head = csv(150_000, (i) => `${i},${i}`)
    writeFileSync(path, Buffer.concat([Buffer.from(head), Buffer.from([0xff, 0x0a])]))
    const failure = await importFile(store, id, { ...settings(''), path }).catch((e) => e)
    expect(failure).toBeInstanceOf(DatasetImportFailed)
    expect((failure as InstanceType<typeof DatasetImportFailed>).message).toContain(
      'not valid utf-8',
    )
    expect(await tableExists(id)).toBe(false)
  })

  it("when lines hold characters past ASCII, cut at the reader's chunk edges, then every encoding and delimiter stores the same text", async () => {
    const value = (i: number) =>
      i % 3 === 0 ? `Tromsø ${i}` : i % 3 === 1 ? `"€ ${i}, 😀"` : `été ${i}`
    const stored = (i: number) => value(i).replace(/^"|"$/g, '')
    const rows = (delimiter: string, pad: string) =>
      `\uFEFFn${delimiter}v\n${pad}\n${csv(MANY, (i) => `${i}${delimiter}${value(i)}`, '').slice(1)}`
    // Padding the first line until a 4-byte character straddles the reader's first 64 KB.
    let pad = '0,x'
    while (Buffer.from(rows(',', pad)).subarray(65_533, 65_537).toString() !== '😀') pad += 'x'
    const expected = [{ n: 0, v: pad.slice(2) }]
    for (let i = 1; i <= MANY; i++) expected.push({ n: i, v: stored(i) })
    const cases: [string, Buffer, Partial<ImportSettings>][] = [
      ['utf-8, copied line by line', Buffer.from(rows(',', pad)), {}],
      ['utf-8, value by value', Buffer.from(rows(';', pad.replace(',', ';'))), { delimiter: ';' }],
      ['utf-16le', Buffer.from(rows(',', pad), 'utf16le'), { encoding: 'utf-16le' }],
    ]
    for (const [name, bytes, overrides] of cases) {
      const id = randomUUID()
      const path = join(dir, `${randomUUID()}.csv`)
      writeFileSync(path, bytes)
      const outcome = await importFile(store, id, { ...settings(''), path, ...overrides })
      expect(
        outcome.columns.map((c) => c.name),
        name,
      ).toEqual(['n', 'v'])
      expect(await rowsOf(id, 'true'), name).toEqual(expected)
      await store.dropTable(id)
    }
  })

  it('when the file ends inside a character, then the import fails as not UTF-8', async () => {
    const path = join(dir, `${randomUUID()}.csv`)
    writeFileSync(
      path,
      Buffer.concat([Buffer.from('n,v\n1,a\n2,'), Buffer.from('€').subarray(0, 2)]),
    )
    const failure = await importFile(store, randomUUID(), { ...settings(''), path }).catch((e) => e)
    expect(failure).toBeInstanceOf(DatasetImportFailed)
    expect((failure as InstanceType<typeof DatasetImportFailed>).message).toContain(
      'line 3, is not valid utf-8',
    )
  })

  it('when a UTF-16 file ends inside a character, then the import fails as not that encoding', async () => {
    const path = join(dir, `${randomUUID()}.csv`)
    const text = Buffer.from('\ufeffn,v\n1,a\n2,b\n', 'utf16le')
    writeFileSync(path, Buffer.concat([text, Buffer.from([0x41])]))
    const failure = await importFile(store, randomUUID(), {
      ...settings(''),
      path,
      encoding: 'utf-16le',
    }).catch((e) => e)
    expect(failure).toBeInstanceOf(DatasetImportFailed)
    expect((failure as InstanceType<typeof DatasetImportFailed>).message).toContain(
      'is not valid utf-16le',
    )
  })

  it('when cells go into COPY as their own text, then the database stores what converting them would', async () => {
    const id = randomUUID()
    const types: ColumnType[] = ['integer', 'number', 'date', 'timestamp']
    // Text passed on as it is, and text that still takes the converting path (last rows).
    const lines = [
      ['+0007', '1.50', '2024-02-29', '2024-05-01T10:00Z'],
      ['007', '.5', '1999-12-31', '2024-05-01T10:00:05.5Z'],
      ['-123456789012345678', '5.', '2024-01-01', '2024-05-01T23:59:59.999Z'],
      [
        '9223372036854775807',
        '-0.1000000000000000055511151231257827',
        '2024-12-31',
        '2024-05-01T10:00:00.123456Z',
      ],
      ['12', '1e3', '2024-03-01', '2024-05-01T10:00:00+02:00'],
      ['-5', '-2', '2024-03-02', '2024-05-01T24:00:00Z'],
    ]
    const content = `i,n,d,t\n${lines.map((line) => line.join(',')).join('\n')}\n`
    await importFile(
      store,
      id,
      settings(content, {
        schema: types.map((type, k) => ({ name: ['i', 'n', 'd', 't'][k] as string, type })),
      }),
    )
    const result = await t.database.db.execute(
      sql.raw(
        `SELECT i::text AS i, n::text AS n, d::text AS d, ` +
          `to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS t ` +
          `FROM ${rowsTable(id)} ORDER BY _row`,
      ),
    )
    const stored = (result as unknown as { rows: Record<string, string>[] }).rows
    expect(stored).toHaveLength(lines.length)
    lines.forEach((line, row) => {
      const expected = line.map((text, k) => convert(text, types[k] as ColumnType, true))
      expect(stored[row], line.join(',')).toEqual({
        i: String(expected[0]),
        n: String(expected[1]),
        d: expected[2],
        t: expected[3],
      })
    })
    await store.dropTable(id)
  })

  it('when whole lines go into COPY as the file wrote them, then quotes, empty cells and booleans are stored as converting them would', async () => {
    // After the learning rows, where lines stream into COPY; each is [s, b, n] as written.
    const tricky = [
      ['"a, b"', 'TRUE', '1'],
      ['"say ""hi"""', 'false', '2'],
      ['"line one\r\nline two"', 'True', '3'],
      ['""', 'false', '4'],
      ['', 'true', '5'],
      ['=1+2', 'false', ''],
      ['plain', 'tRuE', '7'],
    ]
    const expected = [
      { s: 'a, b', b: true, n: 1 },
      { s: 'say "hi"', b: false, n: 2 },
      { s: 'line one\r\nline two', b: true, n: 3 },
      { s: null, b: false, n: 4 },
      { s: null, b: true, n: 5 },
      { s: '=1+2', b: false, n: null },
      { s: 'plain', b: true, n: 7 },
    ]
    // A comma-separated file is copied line by line; any other delimiter value by value.
    for (const delimiter of [',', ';']) {
      const id = randomUUID()
      const lines = [['s', 'b', 'n']]
      for (let i = 1; i <= MANY; i++) lines.push([`x${i}`, String(i % 2 === 0), String(i)])
      lines.push(...tricky)
      const content = `${lines.map((line) => line.join(delimiter)).join('\n')}\n`
      const outcome = await importFile(store, id, settings(content, { delimiter }))
      expect(outcome.columns.map((c) => [c.name, c.type, c.nullable])).toEqual([
        ['s', 'string', true],
        ['b', 'boolean', false],
        ['n', 'integer', true],
      ])
      const result = await t.database.db.execute(
        sql.raw(
          `SELECT s, b, n::int AS n FROM ${rowsTable(id)} WHERE _row > ${MANY} ORDER BY _row`,
        ),
      )
      expect((result as unknown as { rows: unknown[] }).rows, delimiter).toEqual(expected)
      // Each line's position, written before it as digits, is its record's number.
      const positions = await t.database.db.execute(
        sql.raw(
          `SELECT count(*)::int AS rows, count(*) FILTER (WHERE n = _row)::int AS matching ` +
            `FROM ${rowsTable(id)} WHERE _row <= ${MANY}`,
        ),
      )
      expect((positions as unknown as { rows: unknown[] }).rows, delimiter).toEqual([
        { rows: MANY, matching: MANY },
      ])
      const key = await t.database.db.execute(
        sql.raw(
          `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid ` +
            `AND a.attnum = ANY (i.indkey) WHERE i.indrelid = '${rowsTable(id)}'::regclass AND i.indisprimary`,
        ),
      )
      expect((key as unknown as { rows: unknown[] }).rows, 'the primary key').toEqual([
        { attname: '_row' },
      ])
      await store.dropTable(id)
    }
  })
})
