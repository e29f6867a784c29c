import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { buildTestApp, SERVICES_MODE, type TestApp } from '../../../test/helpers.js'
import {
  type ColumnType,
  convertForLoad,
  type DatasetColumn,
  nameColumns,
  type StoredValue,
} from './columns.js'
import { createRowStore, type RowStore, rowsTable } from './row-store.js'
import { RowSketches, SKETCH_EVERY_CELL_ROWS } from './stats.js'

let t: TestApp
let store: RowStore
let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'stats-test-'))
  t = await buildTestApp({ DATA_DIR: dir })
  store = createRowStore(t.database)
})
afterAll(async () => {
  await t.close()
  await rm(dir, { recursive: true, force: true })
})

/** Loads the rows into a table of their own as an import does, and summarises it. */
async function summarise(types: ColumnType[], rows: StoredValue[][]) {
  const id = randomUUID()
  const columns: DatasetColumn[] = nameColumns(types.map((_, i) => `c${i}`)).map((c, i) => ({
    ...c,
    type: types[i] as ColumnType,
    nullable: true,
  }))
  const sketches = new RowSketches(columns.length)
  const sink = await store.openSink(id, columns)
  for (const row of rows) {
    sketches.add(row)
    await sink.write(row)
  }
  await sink.close()
  try {
    return await store.finishTable(id, columns, sketches)
  } finally {
    await store.dropTable(id)
  }
}

describe('statistics', () => {
  it('when a column has many distinct values, then the estimate is within 5 %', async () => {
    const rows: StoredValue[][] = []
    for (let i = 0; i < 200_000; i++) rows.push([i % 150_000])
    rows.push([null])
    const [result] = await summarise(['integer'], rows)
    expect(result?.distinct_exact).toBe(false)
    expect(Math.abs((result?.distinct_count ?? 0) - 150_000) / 150_000).toBeLessThan(0.05)
    expect(result).toMatchObject({ min: 0, max: 149_999, null_count: 1 })
  })

  it('when a column has few values in the first rows and many later, then the database counts them exactly', async () => {
    const rows: StoredValue[][] = []
    for (let i = 0; i < SKETCH_EVERY_CELL_ROWS; i++) rows.push([1, i])
    for (let i = 0; i < 20_000; i++) rows.push([i + 2, i])
    const [late, early] = await summarise(['integer', 'integer'], rows)
    // The first column stopped being hashed after the first rows: its sketch saw one value.
    expect(late).toMatchObject({ distinct_count: 20_001, distinct_exact: true })
    expect(early?.distinct_exact).toBe(false)
    expect(Math.abs((early?.distinct_count ?? 0) / SKETCH_EVERY_CELL_ROWS - 1)).toBeLessThan(0.05)
  })

  it('when a boolean column is summarised, then the mean is the share of true', async () => {
    const [result] = await summarise(
      ['boolean'],
      ['t', 't', 'f', 't'].map((v) => [v]),
    )
    expect(result).toMatchObject({
      min: false,
      max: true,
      mean: 0.75,
      distinct_count: 2,
      distinct_exact: true,
    })
  })

  it('when numbers arrive as the text of the file, then they are counted, bounded and averaged as numbers', async () => {
    const [integers, numbers] = await summarise(
      ['integer', 'number'],
      [
        ['007', '-2.5'],
        ['+7', '.5'],
        ['12', '12'],
        [null, null],
      ].map(([a, b]) => [convertForLoad(a, 'integer', true), convertForLoad(b, 'number', true)]),
    )
    expect(integers).toMatchObject({
      min: 7,
      max: 12,
      mean: 26 / 3,
      null_count: 1,
      distinct_count: 2,
      distinct_exact: true,
    })
    expect(numbers).toMatchObject({ min: -2.5, max: 12, mean: 10 / 3, null_count: 1 })
  })

  it('when text, dates and timestamps are summarised, then bounds follow code points and time, written as the API writes them', async () => {
    const [text, dates, stamps] = await summarise(
      ['string', 'date', 'timestamp'],
      [
        ['b', '2024-03-01', '2024-05-01T10:00:00.250Z'],
        ['Z', '2023-12-31', '2023-01-01T00:00:00.000Z'],
        ['a', null, '2024-05-01T09:59:59.999Z'],
      ],
    )
    expect(text).toMatchObject({ min: 'Z', max: 'b', mean: null, distinct_count: 3 })
    expect(dates).toMatchObject({ min: '2023-12-31', max: '2024-03-01', null_count: 1 })
    expect(stamps).toMatchObject({
      min: '2023-01-01T00:00:00.000Z',
      max: '2024-05-01T10:00:00.250Z',
      distinct_count: 3,
      distinct_exact: true,
    })
  })
})

describe('the rows table of a load', () => {
  const client = () => (t.database.db as unknown as { $client: { query: RawQuery } }).$client
  const exists = async (id: string) => {
    const { rows } = await client().query(`SELECT to_regclass('${rowsTable(id)}') AS oid`)
    return (rows[0] as { oid: string | null }).oid !== null
  }
  const columns = nameColumns(['c0']).map((c) => ({
    ...c,
    type: 'integer' as const,
    nullable: true,
  }))

  // PGlite loads in several COPY statements, each its own transaction: there the importer
  // drops the table after an abort (importer.test.ts covers that path).
  it.runIf(SERVICES_MODE)(
    'when a load is aborted, then its table is gone with its transaction, before anyone drops it',
    async () => {
      const id = randomUUID()
      const sink = await store.openSink(id, columns)
      for (let i = 0; i < 1000; i++) await sink.write([i])
      // Created in the COPY's transaction: invisible to other connections until committed.
      expect(await exists(id)).toBe(false)
      await sink.abort()
      await vi.waitFor(async () => expect(await exists(id)).toBe(false))
      const again = await store.openSink(id, columns)
      await again.write([1])
      await again.close()
      expect(await exists(id)).toBe(true)
      await store.dropTable(id)
    },
  )

  it('when a table is loaded, then it is analysed soon after its statistics are answered', async () => {
    const id = randomUUID()
    // Only ANALYZE fills pg_statistic (an index build sets the table's row count too).
    const analysed = async () => {
      const { rows } = await client().query(
        `SELECT count(*)::int AS n FROM pg_statistic WHERE starelid = '${rowsTable(id)}'::regclass`,
      )
      return (rows[0] as { n: number }).n
    }
    const sink = await store.openSink(id, columns)
    for (let i = 0; i < 1000; i++) await sink.write([i])
    await sink.close()
    try {
      await store.finishTable(id, columns, new RowSketches(1))
      await vi.waitFor(async () => expect(await analysed()).toBe(2), { timeout: 3_000 })
    } finally {
      await store.dropTable(id)
    }
  })
})

type RawQuery = (text: string) => Promise<{ rows: unknown[] }>
