import { readFileSync } from 'node:fs'
import { PGlite, type QueryOptions } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest'
import { PreparedStatements, type RowOptions } from './pglite-statements.js'

/** The parsers Drizzle's PGlite driver passes: these types come back as Postgres' text. */
const RAW_TYPES = [1114, 1184, 1186, 1082, 1231, 1115, 1185, 1187, 1182]

/** The same request, as PGlite's `query()` takes it and as `PreparedStatements` does. */
function options(client: PGlite, rowMode: 'array' | 'object') {
  const raw: NonNullable<QueryOptions['parsers']> = {}
  for (const oid of RAW_TYPES) raw[oid] = (value: string) => value
  const prepared: RowOptions = { rowMode, parsers: { ...client.parsers, ...raw } }
  return { query: { rowMode, parsers: raw } satisfies QueryOptions, prepared }
}

/** The statements PostgreSQL holds for this connection, read past the cache under test. */
async function preparedInPostgres(client: PGlite): Promise<string[]> {
  const result = await client.query<{ statement: string }>(
    'select statement from pg_prepared_statements order by statement',
  )
  return result.rows.map((row) => row.statement)
}

// One in-process PGlite (not the worker thread), so each statement can be run both through
// PGlite's own query() and prepared, and their answers compared.
describe('statements prepared once on PGlite', () => {
  let client: PGlite
  let statements: PreparedStatements
  beforeAll(async () => {
    client = await PGlite.create({
      loadDataDir: new Blob([readFileSync(inject('pgliteTemplate'))]),
      extensions: { pg_trgm },
    })
  })
  beforeEach(async () => {
    await client.exec('drop table if exists t; create table t (id int primary key, note text)')
    // A fresh cache per test; what the last one prepared is closed here.
    await client.exec('deallocate all')
    statements = new PreparedStatements(client, 4)
  })
  afterAll(() => client?.close())

  it('when a statement runs prepared, then its rows, fields and counts equal query()’s for a spread of types', async () => {
    const sql = `select $1::int2 as i2, $2::int4 as i4, $3::int8 as small8, 9007199254740993::int8 as big8,
      $4::numeric as money, $5::float8 as f8, $6::bool as yes, $7::text as words, $8::varchar as v,
      $9::uuid as id, $10::json as j, $11::jsonb as jb, $12::timestamptz as at, $13::timestamp as local,
      $14::date as day, interval '1 day 2 hours' as span, $15::bytea as bytes, $16::int4[] as ints,
      $17::text[] as texts, array[1.50, 2.25]::numeric[] as moneys, array[$12::timestamptz] as ats,
      null::text as nothing, $18::text as absent`
    const params = [
      7,
      -42,
      '123',
      '19.90',
      1.5,
      true,
      'naïve "quoted" text',
      'v',
      '7f1d3a52-9a0e-4c59-8a1e-3f5c2b1d0e9a',
      { a: [1, 'two', null] },
      { nested: { n: 1.25 } },
      new Date('2024-01-02T03:04:05.678Z'),
      '2024-01-02 03:04:05',
      '2024-02-29',
      new Uint8Array([0, 1, 254, 255]),
      [1, 2, 3],
      ['a', 'b,c', 'd"e'],
      undefined,
    ]
    for (const rowMode of ['object', 'array'] as const) {
      const { query, prepared } = options(client, rowMode)
      const expected = await client.query(sql, params, query)
      expect(await statements.query(sql, params, prepared)).toEqual(expected)
      // The second run binds the statement prepared by the first: the same answer again.
      expect(await statements.query(sql, params, prepared)).toEqual(expected)
    }
    expect(await preparedInPostgres(client)).toEqual([sql])
  })

  it('when statements are sent without waiting for each other, then each gets its own answer', async () => {
    const { prepared } = options(client, 'object')
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        n % 3 === 0
          ? statements.query('select $1::int as n, $2::text as kind', [n, 'pair'], prepared)
          : n % 3 === 1
            ? statements.query('select $1::int as n', [n], prepared)
            : statements.script(`select ${n} as n, 'script' as kind, true as flag`),
      ),
    )
    expect(answers.map((answer) => (Array.isArray(answer) ? answer[0] : answer)?.rows)).toEqual(
      Array.from({ length: 12 }, (_, n) =>
        n % 3 === 0
          ? [{ n, kind: 'pair' }]
          : n % 3 === 1
            ? [{ n }]
            : [{ n, kind: 'script', flag: true }],
      ),
    )
  })

  it('when a statement changes rows, then its command and counts equal query()’s', async () => {
    const { query, prepared } = options(client, 'object')
    await statements.query('insert into t values (1, $1), (2, $1)', ['a'], prepared)
    const update = 'update t set note = $1 where id >= $2 returning id'
    const viaPrepared = await statements.query(update, ['b', 1], prepared)
    const viaQuery = await client.query(update, ['c', 1], query)
    expect(viaPrepared).toEqual({ ...viaQuery })
    expect(viaPrepared).toMatchObject({ command: 'UPDATE', affectedRows: 2, rowCount: 2 })
  })

  it('when a statement fails, then the error keeps its SQLSTATE and fields, and the next statement runs', async () => {
    const { prepared } = options(client, 'object')
    await statements.query('insert into t values (1, $1)', ['a'], prepared)
    const error = await statements
      .query('insert into t values (1, $1)', ['b'], prepared)
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(Error)
    expect(error).toMatchObject({
      code: '23505',
      constraint: 't_pkey',
      table: 't',
      severity: 'ERROR',
      query: 'insert into t values (1, $1)',
    })
    // The Sync after the failed Execute ended its implicit transaction.
    expect(client.isInTransaction()).toBe(false)
    const rows = await statements.query('select note from t', [], prepared)
    expect(rows.rows).toEqual([{ note: 'a' }])
  })

  it('when a statement fails to parse, then it is not kept prepared, and running it again fails the same way', async () => {
    const { prepared } = options(client, 'object')
    const sql = 'select * from no_such_table where id = $1'
    for (let run = 0; run < 2; run++) {
      const error = await statements.query(sql, [1], prepared).catch((e: unknown) => e)
      expect(error).toMatchObject({ code: '42P01' })
    }
    expect(statements.size).toBe(0)
    expect(await preparedInPostgres(client)).toEqual([])
    // Once the table exists, the same text prepares and runs.
    await statements.query('create table no_such_table (id int)', [], prepared)
    expect((await statements.query(sql, [1], prepared)).rows).toEqual([])
  })

  it('when more distinct statements run than the bound, then the least recently used are closed in PostgreSQL', async () => {
    const { prepared } = options(client, 'array')
    for (let n = 1; n <= 6; n++) await statements.query(`select ${n} as n`, [], prepared)
    // Reused, so it is not the next to go.
    await statements.query('select 3 as n', [], prepared)
    await statements.query('select 7 as n', [], prepared)
    expect(statements.size).toBe(4)
    // The least recent was closed in the same call as the newest's Parse.
    expect(await preparedInPostgres(client)).toEqual([
      'select 3 as n',
      'select 5 as n',
      'select 6 as n',
      'select 7 as n',
    ])
  })

  it('when a table is altered, dropped and created again, then a statement prepared before answers with the new columns', async () => {
    const { prepared } = options(client, 'object')
    await statements.query('insert into t values (1, $1)', ['a'], prepared)
    expect((await statements.query('select * from t', [], prepared)).rows).toEqual([
      { id: 1, note: 'a' },
    ])
    await statements.query('alter table t add column extra int default 5', [], prepared)
    expect((await statements.query('select * from t', [], prepared)).rows).toEqual([
      { id: 1, note: 'a', extra: 5 },
    ])
    await statements.query('drop table t', [], prepared)
    await statements.query('create table t (id text, at date)', [], prepared)
    await statements.query("insert into t values ('x', '2024-01-02')", [], prepared)
    expect((await statements.query('select * from t', [], prepared)).rows).toEqual([
      { id: 'x', at: '2024-01-02' },
    ])
  })

  it('when the schema changes where no command tag shows it, then the outdated statement is prepared again and runs', async () => {
    const { prepared } = options(client, 'object')
    await client.exec(
      'create or replace function widen_t() returns void language plpgsql as $$ begin alter table t add column wider int; end $$',
    )
    await statements.query('insert into t values (1, $1)', ['a'], prepared)
    await statements.query('select * from t', [], prepared)
    // Its command tag is SELECT, so nothing here knows that the table changed.
    await statements.query('select widen_t()', [], prepared)
    // PostgreSQL answers 0A000 ("cached plan must not change result type") to the old
    // statement; outside a transaction it is prepared again and run.
    expect((await statements.query('select * from t', [], prepared)).rows).toEqual([
      { id: 1, note: 'a', wider: null },
    ])
  })

  it('when a transaction that changed the schema rolls back, then statements prepared inside it are prepared again', async () => {
    const { prepared } = options(client, 'object')
    await statements.query('insert into t values (1, $1)', ['a'], prepared)
    await statements.script('BEGIN')
    await statements.query('alter table t add column inside int', [], prepared)
    expect((await statements.query('select * from t', [], prepared)).rows).toEqual([
      { id: 1, note: 'a', inside: null },
    ])
    await statements.script('ROLLBACK')
    expect((await statements.query('select * from t', [], prepared)).rows).toEqual([
      { id: 1, note: 'a' },
    ])
  })

  it('when a script runs, then its results equal exec()’s and its errors keep their SQLSTATE', async () => {
    const script = "insert into t values (1, 'a'); select id, note from t; update t set note = 'b'"
    const results = await statements.script(script)
    await client.exec('truncate t')
    expect(results).toEqual(await client.exec(script))
    const error = await statements.script('select 1; select 1/0').catch((e: unknown) => e)
    expect(error).toMatchObject({ code: '22012', query: 'select 1; select 1/0' })
    expect(client.isInTransaction()).toBe(false)
  })
})
