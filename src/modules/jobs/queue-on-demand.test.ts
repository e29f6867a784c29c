import { randomUUID } from 'node:crypto'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createTestDatabase, SERVICES_MODE, testConfig, unique } from '../../../test/helpers.js'
import { createQueueOnDemand } from './queue-on-demand.js'
import { createJobSystem } from './system.js'

const log = pino({ level: 'silent' })

function settings(redisUrl = process.env.REDIS_URL as string) {
  return { redisUrl, prefix: `test-queue-${unique()}`, retryBaseMs: 50 }
}

// BullMQ's queue exists in server mode only.
describe.runIf(SERVICES_MODE)('the job queue, opened on its first need', () => {
  it('when nothing has needed the queue, then it answers readiness, counts nothing and closes', async () => {
    const queue = createQueueOnDemand(settings(), log)
    await queue.ping()
    expect(await queue.counts()).toBeNull()
    await queue.close()
    await expect(queue.producer()).rejects.toThrow('closed')
  })

  it('when a relay first delivers, then the producer opens once and the gauge counts its jobs', async () => {
    const queue = createQueueOnDemand(settings(), log)
    const producer = await queue.producer()
    try {
      expect(await queue.producer()).toBe(producer)
      await producer.deliver([{ id: randomUUID(), type: 'test_effect', maxAttempts: 1 }])
      expect((await queue.counts())?.waiting).toBe(1)
      await queue.ping()
    } finally {
      await producer.queue.obliterate({ force: true })
      await queue.close()
    }
  })

  it('when the process closes while the queue opens, then close waits for it and closes it', async () => {
    const queue = createQueueOnDemand(settings(), log)
    const opening = queue.producer()
    await queue.close()
    const producer = await opening
    // BullMQ sets `closing` when its queue's close() begins.
    expect(producer.queue.closing).toBeInstanceOf(Promise)
    await expect(queue.producer()).rejects.toThrow('closed')
  })

  it("when the queue's Redis does not answer, then readiness fails within the command timeout", async () => {
    const database = await createTestDatabase()
    // Nothing listens on port 1: the queue's connection waits for it forever.
    const config = testConfig({ REDIS_URL: 'redis://127.0.0.1:1', REDIS_COMMAND_TIMEOUT_MS: '300' })
    const jobs = createJobSystem({
      role: 'api',
      db: database.db,
      inTransaction: (work) => database.db.transaction(work),
      redis: null,
      settings: config,
      metrics: new Registry(),
      log,
    })
    try {
      await expect(jobs.queueCheck?.()).rejects.toThrow('no answer within 300 ms')
    } finally {
      await jobs.close()
      await database.close()
    }
  })
})
