import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { type PrivateRedis, startPrivateRedis } from '../../test/faults/servers.js'
import { unique } from '../../test/helpers.js'
import { freePort } from '../../test/processes.js'
import { createReadCaches, etagOf, type ReadCacheResult, type ReadCaches } from './read-cache.js'
import { connectRedis } from './redis.js'

// A Redis of this file's own, in both modes, so no other file's invalidations reach these caches.
let server: PrivateRedis
const log = pino({ level: 'silent' })
const opened: { caches: ReadCaches[]; clients: Redis[] } = { caches: [], clients: [] }

beforeAll(async () => {
  server = await startPrivateRedis()
})
afterEach(async () => {
  await Promise.all(opened.caches.splice(0).map((caches) => caches.close()))
  for (const client of opened.clients.splice(0)) client.disconnect()
})
afterAll(() => server.close())

async function connect(url = server.url) {
  const client = connectRedis(
    { url, commandTimeoutMs: 200, breakerResetMs: 1000, connectTimeoutMs: 1000 },
    log,
  )
  opened.clients.push(client)
  if (url === server.url) while (client.status !== 'ready') await sleep(5)
  return client
}

interface Row {
  id: string
  name: string
}

/** One instance's caches for rows, with what it counted. */
function instance(redis: Redis | null, options: { prefix?: string; ttlMs?: number } = {}) {
  const reads: ReadCacheResult[] = []
  const caches = createReadCaches({
    ttlMs: options.ttlMs ?? 60_000,
    maxEntries: 100,
    redis,
    keyPrefix: options.prefix ?? `test:${unique()}`,
    log,
    onRead: (_resource, result) => reads.push(result),
  })
  opened.caches.push(caches)
  return { rows: caches.resource<Row>('row'), reads }
}

/** A stand-in for the database: the row it holds now, and how often it was asked. */
function table(name = 'first') {
  const row = { id: crypto.randomUUID(), name }
  const load = vi.fn(async (id: string) => (id === row.id ? { ...row } : undefined))
  return { row, load }
}

function deferred<T>() {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((done) => {
    resolve = done
  })
  return { promise, resolve }
}

describe('read cache in this process', () => {
  it('when a resource is read twice, then the database is read once and both answers carry its ETag', async () => {
    const { rows, reads } = instance(null)
    const { row, load } = table()
    const first = await rows.read(row.id, load)
    const second = await rows.read(row.id, load)
    expect(first).toEqual({ value: row, etag: etagOf(row) })
    expect(second).toEqual(first)
    expect(load).toHaveBeenCalledTimes(1)
    expect(reads).toEqual(['miss', 'hit'])
  })

  it('when an id arrives in capitals, then it shares the entry, and one invalidation drops both spellings', async () => {
    const { rows } = instance(null)
    const { row, load } = table()
    await rows.read(row.id, load)
    await rows.read(row.id.toUpperCase(), load)
    expect(load).toHaveBeenCalledTimes(1)
    await rows.changed([row.id.toUpperCase()])
    await rows.read(row.id, load)
    expect(load).toHaveBeenCalledTimes(2)
  })

  it('when a missing resource is read, then nothing is kept and the next read asks again', async () => {
    const { rows } = instance(null)
    const { load } = table()
    expect(await rows.read(crypto.randomUUID(), load)).toBeUndefined()
    const id = crypto.randomUUID()
    await rows.read(id, load)
    await rows.read(id, load)
    expect(load).toHaveBeenCalledTimes(3)
  })

  it('when a write commits while a read is loading, then that read answers but is not kept, and the next read loads the new row', async () => {
    const { rows, reads } = instance(null)
    const { row, load } = table('before')
    const gate = deferred<void>()
    const slow = vi.fn(async (id: string) => {
      const old = await load(id)
      await gate.promise
      return old
    })
    const reading = rows.read(row.id, slow)
    await vi.waitFor(() => expect(load).toHaveBeenCalledTimes(1))
    row.name = 'after'
    await rows.changed([row.id])
    gate.resolve()
    expect((await reading)?.value.name).toBe('before')
    expect((await rows.read(row.id, load))?.value.name).toBe('after')
    expect(reads).toEqual(['stale', 'miss'])
  })

  it('when reads of one resource overlap, then they share one database read', async () => {
    const { rows, reads } = instance(null)
    const { row, load } = table()
    const [a, b] = await Promise.all([rows.read(row.id, load), rows.read(row.id, load)])
    expect(a).toEqual(b)
    expect(load).toHaveBeenCalledTimes(1)
    expect(reads.sort()).toEqual(['miss', 'miss'])
  })

  it('when a whole kind changes, then every entry and every read in flight is dropped', async () => {
    const { rows } = instance(null)
    const one = table()
    const two = table()
    await rows.read(one.row.id, one.load)
    const gate = deferred<void>()
    const reading = rows.read(two.row.id, async (id) => {
      await gate.promise
      return two.load(id)
    })
    await rows.changedAll()
    gate.resolve()
    await reading
    await rows.read(one.row.id, one.load)
    await rows.read(two.row.id, two.load)
    expect(one.load).toHaveBeenCalledTimes(2)
    expect(two.load).toHaveBeenCalledTimes(2)
  })

  it('when READ_CACHE_TTL_MS is 0, then every read goes to the database and still carries an ETag', async () => {
    const { rows, reads } = instance(null, { ttlMs: 0 })
    const { row, load } = table()
    expect((await rows.read(row.id, load))?.etag).toBe(etagOf(row))
    await rows.read(row.id, load)
    await rows.changed([row.id])
    await rows.changedAll()
    expect(load).toHaveBeenCalledTimes(2)
    expect(reads).toEqual([])
  })

  it('when an entry outlives READ_CACHE_TTL_MS, then the database is read again', async () => {
    const { rows } = instance(null, { ttlMs: 50 })
    const { row, load } = table()
    await rows.read(row.id, load)
    await sleep(80)
    await rows.read(row.id, load)
    expect(load).toHaveBeenCalledTimes(2)
  })
})

describe('read cache across instances, through Redis', () => {
  it('when one instance has read a resource, then another finds it in Redis without the database', async () => {
    const prefix = `test:${unique()}`
    const a = instance(await connect(), { prefix })
    const b = instance(await connect(), { prefix })
    const { row, load } = table()
    await a.rows.read(row.id, load)
    // The fill is not awaited by the read: wait until Redis holds it.
    await vi.waitFor(async () => {
      expect(await opened.clients[0]?.exists(`${prefix}:row:${row.id}`)).toBe(1)
    })
    expect(await b.rows.read(row.id, load)).toEqual({ value: row, etag: etagOf(row) })
    expect(load).toHaveBeenCalledTimes(1)
    expect(b.reads).toEqual(['hit'])
  })

  it('when a write commits on one instance, then the other drops its own copy through the broadcast', async () => {
    const prefix = `test:${unique()}`
    const a = instance(await connect(), { prefix })
    const b = instance(await connect(), { prefix })
    const { row, load } = table('before')
    await b.rows.read(row.id, load)
    // The subscription is made in the background; a write before it would not be heard.
    await sleep(100)
    row.name = 'after'
    await a.rows.changed([row.id])
    await vi.waitFor(async () => {
      expect((await b.rows.read(row.id, load))?.value.name).toBe('after')
    })
  })

  it('when the broadcast of a write is lost, then a fill read before the write is still refused by Redis', async () => {
    const prefix = `test:${unique()}`
    const redis = await connect()
    const reader = instance(redis, { prefix })
    // Pub/sub delivers at most once: this writer's announcements never arrive.
    const silent = new Proxy(redis, {
      get(target, property) {
        if (property === 'publish') return async () => 0
        const value = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const writer = instance(silent, { prefix })
    const { row, load } = table('before')
    const gate = deferred<void>()
    const reading = reader.rows.read(row.id, async (id) => {
      const old = await load(id)
      await gate.promise
      return old
    })
    await vi.waitFor(() => expect(load).toHaveBeenCalledTimes(1))
    row.name = 'after'
    await writer.rows.changed([row.id])
    gate.resolve()
    await reading
    await sleep(50) // the refused fill has reached Redis
    const third = instance(await connect(), { prefix })
    expect((await third.rows.read(row.id, load))?.value.name).toBe('after')
    expect(third.reads).toEqual(['miss'])
  })

  it('when a whole kind changes, then Redis entries of the old generation are not served', async () => {
    const prefix = `test:${unique()}`
    const a = instance(await connect(), { prefix })
    const { row, load } = table('before')
    await a.rows.read(row.id, load)
    await vi.waitFor(async () => {
      expect(await opened.clients[0]?.exists(`${prefix}:row:${row.id}`)).toBe(1)
    })
    row.name = 'after'
    await a.rows.changedAll()
    const b = instance(await connect(), { prefix })
    expect((await b.rows.read(row.id, load))?.value.name).toBe('after')
    expect(b.reads).toEqual(['stale'])
  })

  it('when Redis is unreachable, then reads answer from the database and writes still resolve', async () => {
    const down = await connect(`redis://127.0.0.1:${await freePort()}`)
    const { rows, reads } = instance(down)
    const { row, load } = table()
    expect((await rows.read(row.id, load))?.value).toEqual(row)
    await rows.changed([row.id])
    await rows.changedAll()
    expect((await rows.read(row.id, load))?.value).toEqual(row)
    expect(load).toHaveBeenCalledTimes(2)
    expect(reads).toEqual(['miss', 'miss'])
  })

  it('when an invalidation cannot reach Redis, then this instance does not read Redis again until its entries have expired', async () => {
    const prefix = `test:${unique()}`
    const redis = await connect()
    const inspect = await connect()
    const { rows } = instance(redis, { prefix })
    const { row, load } = table('before')
    const key = `${prefix}:row:${row.id}`
    await rows.read(row.id, load)
    await vi.waitFor(async () => expect(await inspect.exists(key)).toBe(1))
    // An open breaker fails commands before they leave: the invalidation never arrives.
    redis.breaker.open()
    row.name = 'after'
    await rows.changed([row.id])
    redis.breaker.close()
    expect(await inspect.exists(key)).toBe(1)
    expect((await rows.read(row.id, load))?.value.name).toBe('after')
  })
})
