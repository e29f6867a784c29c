import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it, vi } from 'vitest'
import { AppError } from '../../../shared/errors.js'
import { type TensorData, tensor } from './backend.js'
import { type BatchInfo, createMicroBatcher, splitRows, stackRows } from './batcher.js'

/** A batcher whose run doubles each row, recording the rows of every call. */
function doubling(options: {
  maxBatchSize: number
  maxWaitMs: number
  runMs?: number
  maxQueued?: number
}) {
  const calls: number[][] = []
  const batches: BatchInfo[] = []
  const batcher = createMicroBatcher<number, number>({
    ...options,
    onBatch: (info) => batches.push(info),
    run: async (rows) => {
      calls.push(rows)
      if (options.runMs) await sleep(options.runMs)
      return rows.map((row) => row * 2)
    },
  })
  return { batcher, calls, batches }
}

describe('createMicroBatcher', () => {
  it('when submits arrive together, then they run as one batch', async () => {
    const { batcher, calls, batches } = doubling({ maxBatchSize: 8, maxWaitMs: 20 })
    const results = await Promise.all([1, 2, 3, 4, 5].map((row) => batcher.submit(row)))
    expect(results).toEqual([2, 4, 6, 8, 10])
    expect(calls).toEqual([[1, 2, 3, 4, 5]])
    expect(batches).toMatchObject([{ requests: 5, size: 5, failed: false }])
  })

  it('when more submits arrive than fit, then no batch exceeds maxBatchSize', async () => {
    const { batcher, calls } = doubling({ maxBatchSize: 4, maxWaitMs: 10, runMs: 5 })
    const rows = Array.from({ length: 10 }, (_, i) => i)
    const results = await Promise.all(rows.map((row) => batcher.submit(row)))
    expect(results).toEqual(rows.map((row) => row * 2))
    expect(calls.map((call) => call.length)).toEqual([4, 4, 2])
    expect(calls.flat()).toEqual(rows)
  })

  it('when the queue holds maxQueued rows, then a further submit is refused at once with PREDICTION_QUEUE_FULL and never runs', async () => {
    const { batcher, calls } = doubling({ maxBatchSize: 1, maxWaitMs: 0, runMs: 20, maxQueued: 2 })
    const accepted = [1, 2, 3].map((row) => batcher.submit(row))
    expect(batcher.queued).toBe(2)
    await expect(batcher.submit(4)).rejects.toMatchObject({
      code: 'PREDICTION_QUEUE_FULL',
      status: 503,
    })
    expect(await Promise.all(accepted)).toEqual([2, 4, 6])
    expect(calls.flat()).toEqual([1, 2, 3])
    await expect(batcher.submit(5)).resolves.toBe(10)
  })

  it('when a batch fills up, then it starts at once without waiting for the window', () => {
    const { batcher, calls } = doubling({ maxBatchSize: 2, maxWaitMs: 60_000 })
    void batcher.submit(1)
    expect(calls).toEqual([])
    void batcher.submit(2)
    expect(calls).toEqual([[1, 2]])
  })

  it('when a request is alone, then it runs once maxWaitMs has passed and not before', async () => {
    // A fake clock: on real time, "no longer than the window" would measure the machine's load.
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'],
    })
    try {
      const { batcher, calls } = doubling({ maxBatchSize: 16, maxWaitMs: 50 })
      const answer = batcher.submit(21)
      await vi.advanceTimersByTimeAsync(49)
      expect(calls).toEqual([])
      await vi.advanceTimersByTimeAsync(1)
      expect(calls).toEqual([[21]])
      await expect(answer).resolves.toBe(42)
    } finally {
      vi.useRealTimers()
    }
  })

  it('when maxWaitMs is 0, then the submits of one tick share a batch', async () => {
    const { batcher, calls } = doubling({ maxBatchSize: 16, maxWaitMs: 0 })
    const first = Promise.all([batcher.submit(1), batcher.submit(2), batcher.submit(3)])
    expect(calls).toEqual([])
    await expect(first).resolves.toEqual([2, 4, 6])
    await expect(batcher.submit(4)).resolves.toBe(8)
    expect(calls).toEqual([[1, 2, 3], [4]])
  })

  it('when requests arrive while a batch runs, then they gather into the next batch', async () => {
    const { batcher, calls } = doubling({ maxBatchSize: 16, maxWaitMs: 0, runMs: 30 })
    const first = batcher.submit(0)
    await sleep(5)
    expect(batcher.running).toBe(1)
    const later = [1, 2, 3, 4, 5].map((row) => batcher.submit(row))
    expect(batcher.queued).toBe(5)
    await Promise.all([first, ...later])
    expect(calls).toEqual([[0], [1, 2, 3, 4, 5]])
  })

  it('when many callers race, then each gets the result of its own row', async () => {
    const batcher = createMicroBatcher<{ id: number }, string>({
      maxBatchSize: 7,
      maxWaitMs: 2,
      maxConcurrentBatches: 3,
      run: async (rows) => {
        await sleep(Math.random() * 5)
        return rows.map((row) => `row-${row.id}`)
      },
    })
    const ids = Array.from({ length: 60 }, (_, i) => i)
    const results = await Promise.all(
      ids.map(async (id) => {
        await sleep(Math.random() * 10)
        return batcher.submit({ id })
      }),
    )
    expect(results).toEqual(ids.map((id) => `row-${id}`))
  })

  it('when the run rejects, then every member of that batch rejects and the next batch runs', async () => {
    let call = 0
    const failures: boolean[] = []
    const batcher = createMicroBatcher<number, number>({
      maxBatchSize: 3,
      maxWaitMs: 5,
      onBatch: (info) => failures.push(info.failed),
      run: async (rows) => {
        call++
        if (call === 1) throw new Error('model exploded')
        return rows
      },
    })
    const first = [1, 2, 3].map((row) => batcher.submit(row))
    const second = batcher.submit(4)
    for (const member of first) await expect(member).rejects.toThrow('model exploded')
    await expect(second).resolves.toBe(4)
    expect(failures).toEqual([true, false])
  })

  it('when the run answers an Error for a row, then only that row fails', async () => {
    const batcher = createMicroBatcher<number, number>({
      maxBatchSize: 4,
      maxWaitMs: 5,
      run: async (rows) => rows.map((row) => (row < 0 ? new RangeError(`bad row ${row}`) : row)),
    })
    const [ok, bad, alsoOk] = [1, -1, 2].map((row) => batcher.submit(row))
    await expect(ok).resolves.toBe(1)
    await expect(bad).rejects.toThrow('bad row -1')
    await expect(alsoOk).resolves.toBe(2)
  })

  it('when the run answers the wrong number of results, then the whole batch fails', async () => {
    const batcher = createMicroBatcher<number, number>({
      maxBatchSize: 4,
      maxWaitMs: 5,
      run: async (rows) => rows.slice(1),
    })
    const members = [1, 2].map((row) => batcher.submit(row))
    for (const member of members) await expect(member).rejects.toThrow('1 results for 2 rows')
  })

  it('when submits carry several rows, then maxBatchSize counts rows', async () => {
    const calls: number[][] = []
    const batcher = createMicroBatcher<number[], number>({
      maxBatchSize: 4,
      maxWaitMs: 5,
      sizeOf: (rows) => rows.length,
      run: async (submits) => {
        calls.push(submits.map((rows) => rows.length))
        return submits.map((rows) => rows.length)
      },
    })
    await Promise.all([batcher.submit([1, 2, 3]), batcher.submit([4, 5, 6]), batcher.submit([7])])
    expect(calls).toEqual([[3], [3, 1]])
  })

  it('when closed, then queued submits still run and later ones get 503', async () => {
    const { batcher, calls } = doubling({ maxBatchSize: 8, maxWaitMs: 60_000 })
    const queued = batcher.submit(5)
    await batcher.close()
    await expect(queued).resolves.toBe(10)
    expect(calls).toEqual([[5]])
    const refused = batcher.submit(6)
    await expect(refused).rejects.toBeInstanceOf(AppError)
    await expect(refused).rejects.toMatchObject({ status: 503 })
  })

  it('when the metrics hook throws, then requests are still answered', async () => {
    const batcher = createMicroBatcher<number, number>({
      maxBatchSize: 1,
      maxWaitMs: 0,
      run: async (rows) => rows,
      onBatch: () => {
        throw new Error('metrics down')
      },
    })
    const warned = new Promise((resolve) => process.once('warning', resolve))
    await expect(batcher.submit(3)).resolves.toBe(3)
    await expect(warned).resolves.toMatchObject({ message: 'metrics down' })
  })

  it('rejects options that cannot batch', () => {
    const run = async (rows: number[]) => rows
    expect(() => createMicroBatcher({ maxBatchSize: 0, maxWaitMs: 1, run })).toThrow(RangeError)
    expect(() => createMicroBatcher({ maxBatchSize: 2, maxWaitMs: -1, run })).toThrow(RangeError)
    expect(() =>
      createMicroBatcher({ maxBatchSize: 2, maxWaitMs: 1, maxConcurrentBatches: 0, run }),
    ).toThrow(RangeError)
  })
})

describe('stackRows and splitRows', () => {
  it('concatenate float32 rows along dim 0 and split them back', () => {
    const a = tensor('float32', [1, 2], Float32Array.of(1, 2))
    const b = tensor('float32', [2, 2], Float32Array.of(3, 4, 5, 6))
    const stacked = stackRows([a, b])
    expect(stacked).toEqual(tensor('float32', [3, 2], Float32Array.of(1, 2, 3, 4, 5, 6)))
    expect(splitRows(stacked, [1, 2])).toEqual([a, b])
  })

  it('keep int64 and string tensors intact', () => {
    const labels = [
      tensor('int64', [1], BigInt64Array.of(7n)),
      tensor('int64', [1], BigInt64Array.of(-2n)),
    ]
    expect(splitRows(stackRows(labels), [1, 1])).toEqual(labels)
    const words: TensorData[] = [
      tensor('string', [1, 2], ['a', 'b']),
      tensor('string', [1, 2], ['c', 'd']),
    ]
    const stacked = stackRows(words)
    expect(stacked).toEqual(tensor('string', [2, 2], ['a', 'b', 'c', 'd']))
    expect(splitRows(stacked, [1, 1])).toEqual(words)
  })

  it('give each part its own copy of the data', () => {
    const stacked = tensor('float32', [2, 1], Float32Array.of(1, 2))
    const [first] = splitRows(stacked, [1, 1])
    ;(stacked.data as Float32Array)[0] = 99
    expect(first?.data).toEqual(Float32Array.of(1))
  })

  it('refuse tensors that do not stack or split', () => {
    const row = tensor('float32', [1, 2], Float32Array.of(1, 2))
    expect(() => stackRows([row, tensor('float32', [1, 3], Float32Array.of(1, 2, 3))])).toThrow(
      'do not stack',
    )
    expect(() => stackRows([row, tensor('int64', [1, 2], BigInt64Array.of(1n, 2n))])).toThrow(
      'is int64',
    )
    expect(() => stackRows([tensor('float32', [], Float32Array.of(1))])).toThrow('scalar')
    expect(() => splitRows(row, [2])).toThrow('cannot split 1 rows')
  })
})
