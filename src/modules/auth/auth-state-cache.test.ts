import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  SERVICES_MODE,
  type TestApp,
  testConfig,
} from '../../../test/helpers.js'
import { type App, buildApp } from '../../app.js'

/**
 * Two API instances over one database (and, in services mode, one Redis): a change made
 * through one must cut access on the other even though the other cached the user's state.
 */
// In services mode a TTL far beyond the wait below: only the Redis announcement can
// explain a refusal in time. Embedded mode has no announcements, only expiry.
const TTL_MS = SERVICES_MODE ? 60_000 : 400
const WAIT_MS = SERVICES_MODE ? 5000 : TTL_MS + 2000
let first: TestApp
let second: App
/** Another deployment on the same database and Redis, under a REDIS_PREFIX of its own. */
let apart: App

beforeAll(async () => {
  first = await buildTestApp({ AUTH_CACHE_TTL_MS: String(TTL_MS) })
  second = await buildApp(testConfig({ AUTH_CACHE_TTL_MS: String(TTL_MS) }), {
    database: first.database,
  })
  apart = await buildApp(
    testConfig({ AUTH_CACHE_TTL_MS: String(TTL_MS), REDIS_PREFIX: `apart-${process.pid}` }),
    { database: first.database },
  )
})
afterAll(async () => {
  await apart.close()
  await second.close()
  await first.close()
})

async function statusOnSecond(headers: Record<string, string>) {
  return (await second.inject({ url: '/v1/users/me', headers })).statusCode
}

/** Polls until `expected` or `withinMs` pass; answers the last status seen. */
async function eventually(check: () => Promise<number>, expected: number, withinMs: number) {
  const deadline = Date.now() + withinMs
  let status = await check()
  while (status !== expected && Date.now() < deadline) {
    await sleep(20)
    status = await check()
  }
  return status
}

describe('cached auth state across instances', () => {
  it('drops a deactivated user on the other instance', async () => {
    const admin = await createTestUser(first, 'admin')
    const user = await createTestUser(first, 'user')
    expect(await statusOnSecond(user.headers)).toBe(200) // now cached there

    const deactivate = await injectAs(
      first,
      admin,
    )({
      method: 'PATCH',
      url: `/v1/users/${user.id}`,
      payload: { is_active: false },
    })
    expect(deactivate.statusCode).toBe(200)
    // The instance that made the change refuses at once.
    expect(
      (await first.app.inject({ url: '/v1/users/me', headers: user.headers })).statusCode,
    ).toBe(401)
    // The other one as soon as the announcement arrives (services mode, Redis pub/sub), or
    // at the latest when its cached entry expires (embedded mode has no second instance).
    expect(await eventually(() => statusOnSecond(user.headers), 401, WAIT_MS)).toBe(401)
  })

  it.runIf(SERVICES_MODE)(
    'keeps another REDIS_PREFIX deaf to the announcement (it waits for its own expiry)',
    async () => {
      const admin = await createTestUser(first, 'admin')
      const user = await createTestUser(first, 'user')
      const me = (app: App) => app.inject({ url: '/v1/users/me', headers: user.headers })
      expect((await me(second)).statusCode).toBe(200)
      expect((await me(apart)).statusCode).toBe(200)

      await injectAs(
        first,
        admin,
      )({
        method: 'PATCH',
        url: `/v1/users/${user.id}`,
        payload: { is_active: false },
      })

      expect(await eventually(() => statusOnSecond(user.headers), 401, WAIT_MS)).toBe(401)
      // The same message would have reached `apart` by now had it listened on that channel.
      await sleep(200)
      expect((await me(apart)).statusCode).toBe(200)
    },
  )

  it('applies a demotion on the other instance too', async () => {
    const admin = await createTestUser(first, 'admin')
    const target = await createTestUser(first, 'admin')
    const listUsers = async () =>
      (await second.inject({ url: '/v1/users', headers: target.headers })).statusCode
    expect(await listUsers()).toBe(200)
    await injectAs(
      first,
      admin,
    )({
      method: 'PATCH',
      url: `/v1/users/${target.id}`,
      payload: { role: 'viewer' },
    })
    expect(await eventually(listUsers, 403, WAIT_MS)).toBe(403)
  })

  it('drops a revoked API key on the other instance', async () => {
    const user = await createTestUser(first, 'user')
    const created = await injectAs(
      first,
      user,
    )({
      method: 'POST',
      url: '/v1/api-keys',
      payload: { name: 'shared' },
    })
    const key = created.json() as { id: string; key: string }
    const withKey = { 'x-api-key': key.key }
    expect(await statusOnSecond(withKey)).toBe(200) // its owner is now cached there

    const revoke = await injectAs(first, user)({ method: 'DELETE', url: `/v1/api-keys/${key.id}` })
    expect(revoke.statusCode).toBe(204)
    expect((await first.app.inject({ url: '/v1/users/me', headers: withKey })).statusCode).toBe(401)
    expect(await eventually(() => statusOnSecond(withKey), 401, WAIT_MS)).toBe(401)
  })
})
