import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, inject, it } from 'vitest'
import { isUniqueViolation } from '../shared/errors.js'
import { isDatabaseUnavailable } from './connection-errors.js'
import { PGliteThread } from './pglite-thread.js'

describe('PGlite on its worker thread', () => {
  let thread: PGliteThread | undefined
  afterEach(async () => {
    await thread?.close()
    thread = undefined
  })

  /** From the migrated template when there is one (embedded mode): far faster than initdb. */
  function template(): ArrayBuffer | undefined {
    const file = inject('pgliteTemplate')
    return file ? new Uint8Array(readFileSync(file)).buffer : undefined
  }

  async function open(): Promise<PGliteThread> {
    thread = await PGliteThread.open({ dataDir: undefined, loadDataDir: template() })
    await thread.exec('create table t (id int primary key, note text)')
    return thread
  }

  it('when no shared_buffers size is given, then PostgreSQL runs with 16MB; when one is, with that', async () => {
    const db = await open()
    expect((await db.query('show shared_buffers')).rows).toEqual([{ shared_buffers: '16MB' }])
    await db.close()
    thread = await PGliteThread.open({
      dataDir: undefined,
      loadDataDir: template(),
      sharedBuffersMb: 8,
    })
    expect((await thread.query('show shared_buffers')).rows).toEqual([{ shared_buffers: '8MB' }])
    // Two databases: in services mode, with no migrated template, each one runs initdb.
  }, 60_000)

  it('when a statement fails, then its error keeps the SQLSTATE and constraint callers test', async () => {
    const db = await open()
    await db.query('insert into t values (1, $1)', ['a'])
    const error = await db.query('insert into t values (1, $1)', ['b']).catch((e) => e)
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('23505')
    expect(isUniqueViolation(error, 't_pkey')).toBe(true)
  })

  it('when the work of a transaction throws, then none of it commits', async () => {
    const db = await open()
    const failed = db.transaction(async (tx) => {
      await tx.query('insert into t values (1, $1)', ['inside'])
      throw new Error('changed my mind')
    })
    await expect(failed).rejects.toThrow('changed my mind')
    expect((await db.query('select count(*)::int as n from t')).rows).toEqual([{ n: 0 }])
  })

  it('when a transaction is open, then a statement outside it waits and sees only the commit', async () => {
    const db = await open()
    let outside: Promise<unknown> | undefined
    await db.transaction(async (tx) => {
      await tx.query('insert into t values (1, $1)', ['inside'])
      outside = db.query('select count(*)::int as n from t')
      // Had the outside read run now, it would count no row.
      await tx.query('insert into t values (2, $1)', ['inside'])
    })
    expect(((await outside) as { rows: unknown[] }).rows).toEqual([{ n: 2 }])
  })

  it('when asked for raw types, then those columns come back as Postgres text', async () => {
    const db = await open()
    const result = await db.query(
      "select timestamptz '2024-01-02 03:04:05+00' as at, 1::int as n",
      [],
      { rowMode: 'array', parsers: { 1184: (value: string) => value } },
    )
    expect(result.rows).toEqual([['2024-01-02 03:04:05+00', 1]])
  })

  it('dumps a data directory that a new thread opens with the same rows', async () => {
    const db = await open()
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

  it('when the thread was closed, then a later call fails as a bug would, not as an outage', async () => {
    const db = await open()
    await db.close()
    thread = undefined
    const error = await db.query('select 1').catch((e) => e)
    expect(error).toBeInstanceOf(Error)
    expect(error.message).toMatch(/closed/)
    expect(isDatabaseUnavailable(error)).toBe(false)
  })
})
