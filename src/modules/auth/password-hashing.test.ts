import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, createTestUser, type TestApp } from '../../../test/helpers.js'

/**
 * Password hashing is bounded process-wide (one hash at a time here, none waiting), so a
 * login flood answers 503 at once instead of occupying every core. Its own file: the
 * bound is process state that every app built in the same file would reset.
 */
let t: TestApp

beforeAll(async () => {
  t = await buildTestApp({ PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '0' })
})
afterAll(() => t.close())

describe('a flood of sign-ins', () => {
  it('is served one hash at a time, and the excess answers 503 problem+json at once', async () => {
    const user = await createTestUser(t, 'user')
    const login = () =>
      t.app.inject({
        method: 'POST',
        url: '/v1/auth/token',
        payload: new URLSearchParams({
          grant_type: 'password',
          username: user.email,
          password: user.password,
        }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      })

    const responses = await Promise.all(Array.from({ length: 8 }, login))
    const codes = responses.map((response) => response.statusCode)
    expect(codes.filter((code) => code === 200).length).toBeGreaterThanOrEqual(1)
    const refused = responses.filter((response) => response.statusCode === 503)
    expect(refused.length).toBeGreaterThanOrEqual(1)
    expect(codes.every((code) => code === 200 || code === 503)).toBe(true)
    expect(refused[0]?.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(refused[0]?.json()).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' })

    // Once the flood has passed, signing in works again.
    expect((await login()).statusCode).toBe(200)
  })
})
