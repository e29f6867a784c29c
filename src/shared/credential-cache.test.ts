import { describe, expect, it } from 'vitest'
import { createCredentialCache } from './credential-cache.js'

interface UserAuthState {
  id: string
  role: 'admin' | 'user' | 'viewer'
  isActive: boolean
  authVersion: number
}

const createUserStateCache = (options: {
  ttlMs: number
  maxEntries?: number
  now?: () => number
}) => createCredentialCache<UserAuthState>({ ...options, ownerOf: (state) => state.id })

const state = (authVersion: number): UserAuthState => ({
  id: 'u1',
  role: 'user',
  isActive: true,
  authVersion,
})

function counter(value: () => UserAuthState | undefined) {
  let calls = 0
  return {
    load: async () => {
      calls++
      return value()
    },
    get calls() {
      return calls
    },
  }
}

describe('credential cache', () => {
  it('serves a loaded state until it expires, then reads again', async () => {
    let clock = 0
    const cache = createUserStateCache({ ttlMs: 1000, now: () => clock })
    let version = 1
    const source = counter(() => state(version))

    expect(await cache.get('u1', source.load)).toEqual(state(1))
    version = 2
    clock = 999
    expect(await cache.get('u1', source.load)).toEqual(state(1))
    expect(source.calls).toBe(1)
    clock = 1000
    expect(await cache.get('u1', source.load)).toEqual(state(2))
    expect(source.calls).toBe(2)
  })

  it('reads again at once after an invalidation', async () => {
    const cache = createUserStateCache({ ttlMs: 60_000 })
    let version = 1
    const source = counter(() => state(version))
    await cache.get('u1', source.load)
    version = 2
    cache.invalidateOwner('u1')
    expect(await cache.get('u1', source.load)).toEqual(state(2))
  })

  it('never stores a state read before an invalidation that lands while it loads', async () => {
    const cache = createUserStateCache({ ttlMs: 60_000 })
    let release = () => {}
    const slow = async () => {
      await new Promise<void>((resolve) => {
        release = resolve
      })
      return state(1) // read before the change committed
    }
    const pending = cache.get('u1', slow)
    cache.invalidateOwner('u1') // the change commits and announces itself meanwhile
    release()
    expect(await pending).toEqual(state(1))
    const fresh = counter(() => state(2))
    expect(await cache.get('u1', fresh.load)).toEqual(state(2))
    expect(fresh.calls).toBe(1)
  })

  it('remembers that a user does not exist, for the same short time', async () => {
    const cache = createUserStateCache({ ttlMs: 60_000 })
    const source = counter(() => undefined)
    expect(await cache.get('gone', source.load)).toBeUndefined()
    expect(await cache.get('gone', source.load)).toBeUndefined()
    expect(source.calls).toBe(1)
  })

  it('reads every time with a TTL of 0', async () => {
    const cache = createUserStateCache({ ttlMs: 0 })
    const source = counter(() => state(1))
    await cache.get('u1', source.load)
    await cache.get('u1', source.load)
    expect(source.calls).toBe(2)
    expect(cache.size).toBe(0)
  })

  it('evicts the least recently loaded entry beyond maxEntries', async () => {
    const cache = createUserStateCache({ ttlMs: 60_000, maxEntries: 2 })
    const source = counter(() => state(1))
    for (const id of ['a', 'b', 'c']) await cache.get(id, source.load)
    expect(cache.size).toBe(2)
    await cache.get('a', source.load) // evicted, so loaded again
    expect(source.calls).toBe(4)
  })

  it('drops every value of one owner, and only those', async () => {
    const cache = createCredentialCache<{ keyId: string; userId: string }>({
      ttlMs: 60_000,
      ownerOf: (value) => value.userId,
    })
    const owners: Record<string, string> = { k1: 'alice', k2: 'alice', k3: 'bob' }
    let loads = 0
    const load = async (keyId: string) => {
      loads++
      return { keyId, userId: owners[keyId] as string }
    }
    for (const key of ['k1', 'k2', 'k3']) await cache.get(key, load)
    cache.invalidateOwner('alice')
    expect(cache.size).toBe(1)
    await cache.get('k3', load)
    expect(loads).toBe(3)
    await cache.get('k1', load)
    expect(loads).toBe(4)
  })
})
