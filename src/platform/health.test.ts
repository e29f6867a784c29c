import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestDatabase,
  SERVICES_MODE,
  type TestApp,
  testConfig,
} from '../../test/helpers.js'
import { buildApp } from '../app.js'

let t: TestApp

beforeAll(async () => {
  t = await buildTestApp()
})
afterAll(() => t.close())

describe('/health and /ready', () => {
  it('answers liveness with 200', async () => {
    const response = await t.app.inject({ url: '/health' })
    expect(response.statusCode).toBe(200)
    expect(response.json()).toEqual({ status: 'ok' })
  })

  it('answers readiness with 200 and the checks it ran', async () => {
    const response = await t.app.inject({ url: '/ready' })
    expect(response.statusCode).toBe(200)
    // Server mode also asks the job queue's own Redis connection.
    const expected = SERVICES_MODE
      ? { database: 'ok', redis: 'ok', queue: 'ok' }
      : { database: 'ok' }
    expect(response.json()).toEqual({ status: 'ready', checks: expected })
  })

  it('turns readiness to 503 as soon as shutdown begins, while liveness stays 200', async () => {
    const own = await buildTestApp()
    own.app.beginShutdown()
    const ready = await own.app.inject({ url: '/ready' })
    const live = await own.app.inject({ url: '/health' })
    await own.close()

    expect(ready.statusCode).toBe(503)
    expect(ready.headers['content-type']).toBe('application/problem+json; charset=utf-8')
    expect(ready.json()).toMatchObject({
      code: 'NOT_READY',
      checks: { database: 'ok', shutdown: 'failing' },
    })
    expect(live.statusCode).toBe(200)
  })

  it('when /metrics is scraped, then readiness_check reports each check as /ready would', async () => {
    const own = await buildTestApp()
    const before = (await own.app.inject({ url: '/metrics' })).body
    own.app.beginShutdown()
    const after = (await own.app.inject({ url: '/metrics' })).body
    await own.close()

    expect(before).toContain('readiness_check{check="database"} 1')
    expect(before).not.toContain('readiness_check{check="shutdown"}')
    expect(after).toContain('readiness_check{check="database"} 1')
    expect(after).toContain('readiness_check{check="shutdown"} 0')
  })

  it('answers 503 naming the database when it does not answer', async () => {
    const own = await buildTestApp()
    await own.database.close()
    const response = await own.app.inject({ url: '/ready' })
    await own.app.close()

    expect(response.statusCode).toBe(503)
    expect(response.json()).toMatchObject({
      checks: { database: 'failing' },
      detail: 'Not ready: database.',
    })
  })

  it('answers 503 naming Redis when Redis does not answer', async () => {
    const database = await createTestDatabase()
    // Nothing listens on port 1: the client can never connect.
    const redis = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    })
    redis.on('error', () => {})
    const app = await buildApp(testConfig(), { database, redis })
    const response = await app.inject({ url: '/ready' })
    await app.close()
    redis.disconnect()
    await database.close()

    expect(response.statusCode).toBe(503)
    expect(response.json().checks).toMatchObject({ database: 'ok', redis: 'failing' })
  })
})
