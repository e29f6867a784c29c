import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { buildTestApp, type TestApp } from '../../../test/helpers.js'
import {
  type ColumnType,
  convertForLoad,
  type DatasetColumn,
  nameColumns,
  type StoredValue,
} from './columns.js'
import { createRowStore, type RowStore, rowsTable } from './row-store.js'
import { DistinctCounter, EXACT_DISTINCT_MAX, ExactKeysBudget } from './stats.js'

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
async function summarise(
  types: ColumnType[],
  rows: StoredValue[][],
  budget = new ExactKeysBudget(),
  id = randomUUID(),
) {
  const columns: DatasetColumn[] = nameColumns(types.map((_, i) => `c${i}`)).map((c, i) => ({
    ...c,
    type: types[i] as ColumnType,
    nullable: true,
  }))
  const counters = columns.map((column) => new DistinctCounter(column.type, budget))
  const sink = await store.openSink(id, columns)
  for (const row of rows) {
    row.forEach((value, i) => {
      counters[i]?.add(value)
    })
    await sink.write(row)
  }
  await sink.close()
  try {
    return await store.finishTable(id, columns, counters)
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

  it('when a column has exactly the limit of distinct values, then they are counted exactly, and one more makes it an estimate', async () => {
    const values = (count: number) => Array.from({ length: count }, (_, i) => [`value ${i}`])
    const [atLimit] = await summarise(['string'], values(EXACT_DISTINCT_MAX))
    expect(atLimit).toMatchObject({ distinct_count: EXACT_DISTINCT_MAX, distinct_exact: true })
    const [beyond] = await summarise(['string'], values(EXACT_DISTINCT_MAX + 1))
    expect(beyond?.distinct_exact).toBe(false)
    expect(Math.abs((beyond?.distinct_count ?? 0) / (EXACT_DISTINCT_MAX + 1) - 1)).toBeLessThan(
      0.05,
    )
  })

  it('when the exact sets outgrow their memory, then a column of few values is counted exactly in the database', async () => {
    const budget = new ExactKeysBudget()
    budget.bytes = 2_000
    const long = (i: number) => `${'x'.repeat(100)} ${i % 40}`
    const [text, small] = await summarise(
      ['string', 'integer'],
      Array.from({ length: 400 }, (_, i) => [long(i), String(i % 3)]),
      budget,
    )
    expect(text).toMatchObject({ distinct_count: 40, distinct_exact: true })
    expect(small).toMatchObject({ distinct_count: 3, distinct_exact: true })
  })
})

describe('planner statistics', () => {
  it('when a table is loaded, then it is analysed soon after its statistics are answered', async () => {
    const id = randomUUID()
    const client = (t.database.db as unknown as { $client: { query: RawQuery } }).$client
    const table = rowsTable(id)
    // Only ANALYZE fills pg_statistic (an index build sets the table's row count too).
    const analysed = async () => {
      const { rows } = await client.query(
        `SELECT count(*)::int AS n FROM pg_statistic WHERE starelid = '${table}'::regclass`,
      )
      return (rows[0] as { n: number }).n
    }
    const columns = nameColumns(['c0']).map((c) => ({
      ...c,
      type: 'integer' as const,
      nullable: true,
    }))
    const sink = await store.openSink(id, columns)
    for (let i = 0; i < 1000; i++) await sink.write([i])
    await sink.close()
    try {
      await store.finishTable(id, columns, [new DistinctCounter('integer', new ExactKeysBudget())])
      await vi.waitFor(async () => expect(await analysed()).toBe(2), { timeout: 3_000 })
    } finally {
      await store.dropTable(id)
    }
  })
})

type RawQuery = (text: string) => Promise<{ rows: unknown[] }>

describe('distinct counter', () => {
  const count = (type: ColumnType, values: StoredValue[]) => {
    const counter = new DistinctCounter(type, new ExactKeysBudget())
    for (const value of values) counter.add(value)
    return counter.result()
  }

  it('when values are written differently but equal in their type, then they count once', () => {
    expect(count('integer', ['7', '+7', '007', 7, '-0', '0', '0000000000000000007'])).toEqual({
      count: 2,
      exact: true,
    })
    expect(count('integer', ['9007199254740993', '9007199254740992'])).toEqual({
      count: 2,
      exact: true,
    })
    expect(count('number', ['1.50', '1.5', 1.5, '-0', '0.0'])).toEqual({ count: 2, exact: true })
    expect(count('boolean', ['TRUE', 't', 'true', 'False', 'f'])).toEqual({
      count: 2,
      exact: true,
    })
    expect(
      count('timestamp', [
        '2024-05-01T10:00Z',
        '2024-05-01T10:00:00Z',
        '2024-05-01T10:00:00.0Z',
        '2024-05-01T10:00:00.000Z',
        '2024-05-01T10:00:00.5Z',
        '2024-05-01T10:00:00.50Z',
        '2024-05-01T10:00:00.500Z',
      ]),
    ).toEqual({ count: 2, exact: true })
    expect(count('string', ['a', 'A', 'a ', null, 'a'])).toEqual({ count: 3, exact: true })
  })

  it('when a set is dropped for memory and the sketch finds many values, then the estimate stands', () => {
    const budget = new ExactKeysBudget()
    budget.bytes = 1_000
    const counter = new DistinctCounter('string', budget)
    for (let i = 0; i < 50_000; i++) counter.add(`value number ${i}`)
    const result = counter.result()
    expect(result?.exact).toBe(false)
    expect(Math.abs((result?.count ?? 0) / 50_000 - 1)).toBeLessThan(0.05)
    // The dropped set gave its share back.
    expect(budget.bytes).toBe(1_000)
  })
})
