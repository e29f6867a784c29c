import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest'
import { isUniqueViolation } from '../shared/errors.js'
import { isDatabaseUnavailable } from './connection-errors.js'
import { PGliteThread } from './pglite-thread.js'

/** The migrated template the global setup made: far faster to load than an initdb. */
function template(): ArrayBuffer {
  return new Uint8Array(readFileSync(inject('pgliteTemplate'))).buffer
}

// Starting a thread costs a PGlite boot, so the tests share one, each on an empty table;
// only what needs a thread of its own (other settings, a copy, a close) starts one.
describe('statements on a PGlite worker thread', () => {
  let db: PGliteThread
  beforeAll(async () => {
    db = await PGliteThread.open({ dataDir: undefined, loadDataDir: template() })
    await db.exec('create table t (id int primary key, note text)')
  })
  beforeEach(() => db.exec('truncate t'))
  afterAll(() => db?.close())

  it('when no shared_buffers size is given, then PostgreSQL runs with 16MB; when one is, with that', async () => {
    expect((await db.query('show shared_buffers')).rows).toEqual([{ shared_buffers: '16MB' }])
    const small = await PGliteThread.open({
      dataDir: undefined,
      loadDataDir: template(),
      sharedBuffersMb: 8,
    })
    try {
      expect((await small.query('show shared_buffers')).rows).toEqual([{ shared_buffers: '8MB' }])
    } finally {
      await small.close()
    }
  })

  it('when a statement fails, then its error keeps the SQLSTATE and constraint callers test', async () => {
    await db.query('insert into t values (1, $1)', ['a'])
    const error = await db.query('insert into t values (1, $1)', ['b']).catch((e) => e)
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('23505')
    expect(isUniqueViolation(error, 't_pkey')).toBe(true)
  })

  it('when the work of a transaction throws, then none of it commits', async () => {
    const failed = db.transaction(async (tx) => {
      await tx.query('insert into t values (1, $1)', ['inside'])
      throw new Error('changed my mind')
    })
    await expect(failed).rejects.toThrow('changed my mind')
    expect((await db.query('select count(*)::int as n from t')).rows).toEqual([{ n: 0 }])
  })

  it('when a transaction is open, then a statement outside it waits and sees only the commit', async () => {
    let outside: Promise<unknown> | undefined
    await db.transaction(async (tx) => {
      await tx.query('insert into t values (1, $1)', ['inside'])
      outside = db.query('select count(*)::int as n from t')
      // Had the outside read run now, it would count no row.
      await tx.query('insert into t values (2, $1)', ['inside'])
    })
    expect(((await outside) as { rows: unknown[] }).rows).toEqual([{ n: 2 }])
  })

  it('when statements arrive while a transaction is open, then they wait for its end, and its own run together', async () => {
    const outside: Promise<unknown>[] = []
    const seenInside = await db.transaction(async (tx) => {
      await tx.query('insert into t values (1, $1)', ['inside'])
      for (let n = 10; n < 20; n++) {
        outside.push(db.query('insert into t values ($1, $2)', [n, 'outside']))
        outside.push(db.query('select count(*)::int as n from t'))
      }
      await tx.query('insert into t values (2, $1)', ['inside'])
      return (await tx.query<{ n: number }>('select count(*)::int as n from t')).rows[0]?.n
    })
    expect(seenInside).toBe(2)
    const answers = (await Promise.all(outside)) as { rows: { n?: number }[] }[]
    // In the order they were sent, each after the commit: 3 rows after the first insert, ...
    const counts = answers.filter((_, i) => i % 2 === 1).map((answer) => answer.rows[0]?.n)
    expect(counts).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  })

  it('when a statement in a transaction failed and the work went on, then its commit fails with 25P02 and nothing commits', async () => {
    const committed = db.transaction(async (tx) => {
      await tx.query('insert into t values (1, $1)', ['a'])
      const error = await tx.query('insert into t values (1, $1)', ['b']).catch((e) => e)
      expect(error.code).toBe('23505')
    })
    await expect(committed).rejects.toMatchObject({ code: '25P02' })
    expect((await db.query('select count(*)::int as n from t')).rows).toEqual([{ n: 0 }])
  })

  it('when a statement fails, then the thread serves the next one', async () => {
    const error = await db.query('select 1/0').catch((e) => e)
    expect(error.code).toBe('22012')
    expect((await db.query('select $1::int + 1 as n', [1])).rows).toEqual([{ n: 2 }])
  })

  it('when asked for raw types, then those columns come back as Postgres text', async () => {
    const result = await db.query(
      "select timestamptz '2024-01-02 03:04:05+00' as at, 1::int as n",
      [],
      { rowMode: 'array', parsers: { 1184: (value: string) => value } },
    )
    expect(result.rows).toEqual([['2024-01-02 03:04:05+00', 1]])
  })

  it('dumps a data directory that a new thread opens with the same rows', async () => {
    await db.query('insert into t values (7, $1)', ['kept'])
    const dump = await db.dumpDataDir()
    const copy = await PGliteThread.open({
      dataDir: undefined,
      loadDataDir: await dump.arrayBuffer(),
    })
    try {
      expect((await copy.query('select note from t')).rows).toEqual([{ note: 'kept' }])
    } finally {
      await copy.close()
    }
  })
})

describe('a PGlite worker thread with a bound on its prepared statements', () => {
  it('when more distinct statements run than the bound, then PostgreSQL never holds more than it', async () => {
    const db = await PGliteThread.open({
      dataDir: undefined,
      loadDataDir: template(),
      preparedStatementsMax: 3,
    })
    try {
      for (let n = 1; n <= 10; n++) {
        expect((await db.query(`select ${n} as n`)).rows).toEqual([{ n }])
      }
      const held = await db.query('select count(*)::int as n from pg_prepared_statements')
      expect(held.rows).toEqual([{ n: 3 }])
    } finally {
      await db.close()
    }
  })
})

describe('a closed PGlite worker thread', () => {
  it('when the thread was closed, then a later call fails as a bug would, not as an outage', async () => {
    const db = await PGliteThread.open({ dataDir: undefined, loadDataDir: template() })
    await db.close()
    const error = await db.query('select 1').catch((e) => e)
    expect(error).toBeInstanceOf(Error)
    expect(error.message).toMatch(/closed/)
    expect(isDatabaseUnavailable(error)).toBe(false)
  })
})
