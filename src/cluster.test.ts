import { describe, expect, it } from 'vitest'
import { DEFAULT_RESTART_POLICY, restartDelay, serverProcessCount } from './cluster.js'
import { startBanner } from './server-start.js'

const serverMode = {
  DATABASE_URL: 'postgres://localhost/orderflow',
  REDIS_URL: 'redis://localhost:6379',
}

describe('serverProcessCount', () => {
  it('when WEB_CONCURRENCY is a number, then that many processes run', () => {
    expect(serverProcessCount({ ...serverMode, WEB_CONCURRENCY: '3' }, 8)).toBe(3)
  })

  it('when WEB_CONCURRENCY is auto, then one process runs per CPU', () => {
    expect(serverProcessCount({ ...serverMode, WEB_CONCURRENCY: 'auto' }, 4)).toBe(4)
  })

  it('when embedded mode asks for one process, then it gets one, auto on one CPU included', () => {
    expect(serverProcessCount({ WEB_CONCURRENCY: '1' })).toBe(1)
    expect(serverProcessCount({ WEB_CONCURRENCY: 'auto' }, 1)).toBe(1)
  })

  it('when embedded mode asks for more than one, then it refuses in one line naming the fix', () => {
    const asking = () => serverProcessCount({ WEB_CONCURRENCY: 'auto' }, 2)
    expect(asking).toThrow(
      'WEB_CONCURRENCY=auto asks for 2 server processes, but embedded mode runs one',
    )
    expect(asking).toThrow(
      /set DATABASE_URL and REDIS_URL for server mode, or WEB_CONCURRENCY=1\.$/,
    )
  })

  it('when PostgreSQL is set without Redis, then more than one process is refused', () => {
    expect(() =>
      serverProcessCount({ DATABASE_URL: serverMode.DATABASE_URL, WEB_CONCURRENCY: '2' }),
    ).toThrow(/without REDIS_URL each would keep its own rate limits/)
  })
})

describe('restartDelay', () => {
  const policy = { baseDelayMs: 100, maxDelayMs: 1000, maxStartFailures: 6 }

  it('when replacements keep dying before they listen, then each waits twice as long, up to the cap', () => {
    expect([0, 1, 2, 3, 4, 5].map((failed) => restartDelay(policy, failed))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ])
  })

  it('when too many replacements in a row died before listening, then it gives up', () => {
    expect(restartDelay(policy, 6)).toBeNull()
    expect(restartDelay(DEFAULT_RESTART_POLICY, DEFAULT_RESTART_POLICY.maxStartFailures)).toBeNull()
  })

  it('when a worker that was serving dies, then the default replaces it after a second, not at once', () => {
    expect(restartDelay(DEFAULT_RESTART_POLICY, 0)).toBe(1000)
  })
})

describe('startBanner', () => {
  const config = { HOST: '127.0.0.1', DOCS_ENABLED: false, DATABASE_URL: serverMode.DATABASE_URL }
  const address = { address: '127.0.0.1', family: 'IPv4', port: 8000 }

  it('when several server processes share the port, then the start message says how many', () => {
    expect(startBanner(config, address, true, 2)).toBe(
      'OrderFlow is listening (2 server processes): API at http://127.0.0.1:8000/v1, docs off (DOCS_ENABLED=false).\n',
    )
  })

  it('when one process serves, then the start message reads as before', () => {
    expect(startBanner(config, address, true)).toMatch(/^OrderFlow is listening: API at /)
  })
})
