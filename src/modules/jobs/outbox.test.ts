import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SERVICES_MODE, unique } from '../../../test/helpers.js'
import {
  buildJobsTestApp,
  countRows,
  createJobsDatabase,
  createTestJobTables,
  eventually,
  type JobsDatabase,
} from '../../../test/jobs.js'
import { idempotencyKeys, jobs, refreshTokens, users } from '../../db/schema/index.js'
import { scheduleHousekeeping } from './housekeeping.js'
import { createQueueProducer } from './queue.js'
import { createJobRepository, enqueueJob } from './repository.js'

describe('outbox and restarts', () => {
  let own: JobsDatabase

  beforeAll(async () => {
    own = await createJobsDatabase()
    await createTestJobTables(own.database.db)
  })
  afterAll(() => own?.drop())

  const statusOf = async (id: string) =>
    (await createJobRepository(own.database.db).findById(id))?.status

  it('when a job committed but the process died before handing it to the queue, then the next start runs it exactly once', async () => {
    // Committed while nothing relays: what a crash right after the commit leaves.
    const row = await own.database.db.transaction((tx) =>
      enqueueJob(tx, { type: 'test_effect', params: { key: unique() }, owner_id: null }),
    )
    expect(row.status).toBe('queued')
    const t = await buildJobsTestApp({}, { database: own })
    try {
      await eventually(async () => (await statusOf(row.id)) === 'succeeded', 20_000, 'the job')
      expect(await countRows(own.database.db, 'test_job_runs', sql`job_id = ${row.id}`)).toBe(1)
      expect(await countRows(own.database.db, 'test_job_effects', sql`job_id = ${row.id}`)).toBe(1)
      const [after] = await own.database.db.select().from(jobs).where(sql`id = ${row.id}`)
      expect(after?.enqueuedAt).not.toBeNull()
    } finally {
      await t.close()
    }
  })

  // Embedded mode owns its database alone, so a `running` job at start was interrupted. In
  // server mode the queue redelivers it instead: worker.test.ts kills a worker mid-job.
  it.skipIf(SERVICES_MODE)(
    'when the process stopped while a job ran, then the job runs again at the next start and its effect is written once',
    async () => {
      const row = await enqueueJob(own.database.db, {
        type: 'test_effect',
        params: { key: unique() },
        owner_id: null,
      })
      await own.database.db.execute(
        sql`UPDATE jobs SET status = 'running', attempts = 1, started_at = now() WHERE id = ${row.id}`,
      )
      const t = await buildJobsTestApp({}, { database: own })
      try {
        await eventually(async () => (await statusOf(row.id)) === 'succeeded', 20_000, 'the job')
        const [after] = await own.database.db.select().from(jobs).where(sql`id = ${row.id}`)
        expect(after?.attempts).toBe(2)
        expect(await countRows(own.database.db, 'test_job_effects', sql`job_id = ${row.id}`)).toBe(1)
      } finally {
        await t.close()
      }
    },
  )

  // The queue exists in server mode only.
  it.skipIf(!SERVICES_MODE)(
    'when a relay enqueues a job twice (it died before recording the first), then the job still runs once',
    async () => {
      const prefix = `test-jobs-${unique()}`
      const row = await enqueueJob(own.database.db, {
        type: 'test_effect',
        params: { key: unique() },
        owner_id: null,
      })
      const producer = createQueueProducer(
        { redisUrl: process.env.REDIS_URL as string, prefix, retryBaseMs: 50 },
        (await import('pino')).pino({ level: 'silent' }),
      )
      try {
        const taken = { id: row.id, type: row.type, maxAttempts: row.maxAttempts }
        await producer.deliver([taken])
        await producer.deliver([taken])
        expect((await producer.counts()).waiting).toBe(1)
      } finally {
        await producer.close()
      }
      const t = await buildJobsTestApp({ QUEUE_PREFIX: prefix }, { database: own })
      try {
        await eventually(async () => (await statusOf(row.id)) === 'succeeded', 20_000, 'the job')
        await new Promise((resolve) => setTimeout(resolve, 300))
        expect(await countRows(own.database.db, 'test_job_runs', sql`job_id = ${row.id}`)).toBe(1)
      } finally {
        await t.close()
      }
    },
  )
})

describe('housekeeping', () => {
  let own: JobsDatabase

  beforeAll(async () => {
    own = await createJobsDatabase()
  })
  afterAll(() => own?.drop())

  it('when two instances tick in the same slot, then one housekeeping job is queued per tick', async () => {
    const log = (await import('pino')).pino({ level: 'silent' })
    let now = Date.parse('2030-01-01T10:00:30Z')
    const instances = [1, 2].map(() =>
      scheduleHousekeeping({ db: own.database.db, intervalMs: 60_000, log, now: () => now }),
    )
    try {
      await Promise.all(instances.map((instance) => instance.tick()))
      await Promise.all(instances.map((instance) => instance.tick()))
      const slot = (iso: string) => countRows(own.database.db, 'jobs', sql`dedupe_key = ${`housekeeping:${iso}`}`)
      expect(await slot('2030-01-01T10:00:00.000Z')).toBe(1)
      now += 60_000
      await Promise.all(instances.map((instance) => instance.tick()))
      expect(await slot('2030-01-01T10:01:00.000Z')).toBe(1)
    } finally {
      for (const instance of instances) instance.stop()
    }
  })

  it('when housekeeping runs, then expired keys, tokens and old finished jobs go and current ones stay', async () => {
    const db = own.database.db
    const [user] = await db
      .insert(users)
      .values({ email: `hk-${unique().toLowerCase()}@example.com`, fullName: 'HK', role: 'user', passwordHash: 'x' })
      .returning()
    const userId = user?.id as string
    const past = new Date(Date.now() - 3600_000)
    const future = new Date(Date.now() + 3600_000)
    const key = (k: string, expiresAt: Date) => ({
      scope: `user:${userId}`,
      key: k,
      method: 'POST',
      path: '/v1/orders',
      requestHash: 'h',
      expiresAt,
    })
    await db.insert(idempotencyKeys).values([key('old', past), key('new', future)])
    const token = (hash: string, expiresAt: Date) => ({
      familyId: crypto.randomUUID(),
      userId,
      tokenHash: hash,
      expiresAt,
    })
    await db.insert(refreshTokens).values([token(`old-${unique()}`, past), token(`new-${unique()}`, future)])
    const old = await enqueueJob(db, { type: 'test_effect', params: { key: 'old' }, owner_id: null })
    const recent = await enqueueJob(db, { type: 'test_effect', params: { key: 'recent' }, owner_id: null })
    await db.execute(
      sql`UPDATE jobs SET status = 'succeeded', finished_at = now() - interval '40 days' WHERE id = ${old.id}`,
    )
    await db.execute(sql`UPDATE jobs SET status = 'succeeded', finished_at = now() WHERE id = ${recent.id}`)

    const t = await buildJobsTestApp({ JOB_RETENTION_DAYS: '30' }, { database: own })
    try {
      const run = await t.app.jobs.enqueue({ type: 'housekeeping', params: {}, owner_id: null })
      const done = await eventually(async () => {
        const row = await createJobRepository(db).findById(run.id)
        return row?.status === 'succeeded' && row
      })
      // The ticks queued by the test above may have run first: the counts are theirs then.
      expect(Object.keys(done.result as object).sort()).toEqual([
        'idempotency_keys',
        'jobs',
        'refresh_tokens',
        'temporary_files',
      ])
      expect(await countRows(db, 'idempotency_keys', sql`scope = ${`user:${userId}`}`)).toBe(1)
      expect(await countRows(db, 'refresh_tokens', sql`user_id = ${userId}`)).toBe(1)
      expect(await countRows(db, 'jobs', sql`id = ${old.id}`)).toBe(0)
      expect(await countRows(db, 'jobs', sql`id = ${recent.id}`)).toBe(1)
    } finally {
      await t.close()
    }
  })
})
