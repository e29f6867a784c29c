import { describe, expect, it } from 'vitest'
import { createLimiter, QueueFull } from './limiter.js'

function deferred() {
  let resolve = () => {}
  const promise = new Promise<void>((done) => {
    resolve = done
  })
  return { promise, resolve }
}

describe('limiter', () => {
  it('runs at most `concurrency` tasks at once, then the queued ones in order', async () => {
    const limiter = createLimiter({ concurrency: 2, maxQueue: 10 })
    const gates = Array.from({ length: 4 }, deferred)
    const started: number[] = []
    const runs = gates.map((gate, index) =>
      limiter.run(async () => {
        started.push(index)
        await gate.promise
        return index
      }),
    )
    await Promise.resolve()
    expect(started).toEqual([0, 1])
    expect([limiter.active, limiter.queued]).toEqual([2, 2])

    gates[1]?.resolve()
    await runs[1]
    await Promise.resolve()
    expect(started).toEqual([0, 1, 2])
    for (const gate of gates) gate.resolve()
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3])
    expect([limiter.active, limiter.queued]).toEqual([0, 0])
  })

  it('refuses at once when the queue is full, and frees the slot of a failed task', async () => {
    const limiter = createLimiter({ concurrency: 1, maxQueue: 1 })
    const gate = deferred()
    const first = limiter.run(() => gate.promise)
    const second = limiter.run(async () => 'second')
    await expect(limiter.run(async () => 'third')).rejects.toBeInstanceOf(QueueFull)
    gate.resolve()
    await first
    expect(await second).toBe('second')

    await expect(limiter.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(await limiter.run(async () => 'after a failure')).toBe('after a failure')
  })
})
