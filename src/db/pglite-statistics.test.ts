import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest'
import { PGliteThread } from './pglite-thread.js'

/** The migrated template the global setup made: far faster to load than an initdb. */
function template(): ArrayBuffer {
  return new Uint8Array(readFileSync(inject('pgliteTemplate'))).buffer
}

async function reltuples(db: PGliteThread, table: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    'select reltuples::int as n from pg_class where oid = $1::regclass',
    [table],
  )
  return rows[0]?.n ?? Number.NaN
}

async function estimatedRows(db: PGliteThread, sql: string): Promise<number> {
  const { rows } = await db.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
    `explain (format json) ${sql}`,
  )
  return rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? Number.NaN
}

describe('planner statistics on a PGlite worker thread', () => {
  let db: PGliteThread
  beforeAll(async () => {
    // No check of its own: each test asks for one, so none runs in between.
    db = await PGliteThread.open({
      dataDir: undefined,
      loadDataDir: template(),
      statisticsCheckIntervalMs: 0,
    })
    await db.exec('create table measured (id int primary key, n int not null)')
  })
  afterAll(() => db?.close())

  it('when a table with rows was never analyzed, then the check analyzes it and the planner counts its rows', async () => {
    await db.exec('insert into measured select i, i % 7 from generate_series(1, 1000) i')
    expect(await reltuples(db, 'measured')).toBe(-1)

    expect(await db.analyzeStaleTables()).toContain('public.measured')
    expect(await reltuples(db, 'measured')).toBe(1000)
    expect(await estimatedRows(db, 'select 1 from measured')).toBe(1000)
    expect(await estimatedRows(db, 'select 1 from measured where n = 3')).toBe(143)
  })

  it('when no table grew since the last check, then the next one analyzes nothing', async () => {
    await db.analyzeStaleTables()
    await db.exec('insert into measured values (100001, 1)')
    expect(await db.analyzeStaleTables()).toEqual([])
  })

  it('when a table grew by more than a fifth, then the check analyzes it again', async () => {
    await db.analyzeStaleTables()
    const before = await reltuples(db, 'measured')
    await db.exec(
      `insert into measured select i, 0 from generate_series(200001, ${200000 + 5 * before}) i`,
    )

    expect(await db.analyzeStaleTables()).toEqual(['public.measured'])
    const { rows } = await db.query<{ n: number }>('select count(*)::int as n from measured')
    expect(await reltuples(db, 'measured')).toBe(rows[0]?.n)
  })

  it('when a statement with a LIMIT parameter runs again and again, then PostgreSQL plans it once', async () => {
    const page = 'select id from measured order by id desc limit $1 offset $2'
    for (let run = 0; run < 8; run++) await db.query(page, [20, run])
    const { rows } = await db.query(
      `select generic_plans::int as generic_plans, custom_plans::int as custom_plans
       from pg_prepared_statements where statement = $1`,
      [page],
    )
    expect(rows).toEqual([{ generic_plans: 8, custom_plans: 0 }])
  })
})

describe('a PGlite worker thread left to itself', () => {
  it('when rows arrive in a table, then the thread analyzes it at its next check', async () => {
    const db = await PGliteThread.open({
      dataDir: undefined,
      loadDataDir: template(),
      statisticsCheckIntervalMs: 20,
    })
    try {
      await db.exec('create table arriving (id int primary key)')
      await db.exec('insert into arriving select generate_series(1, 500)')
      await vi.waitFor(async () => expect(await reltuples(db, 'arriving')).toBe(500), {
        timeout: 20_000,
        interval: 50,
      })
    } finally {
      await db.close()
    }
  })
})
