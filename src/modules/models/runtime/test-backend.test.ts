import { describe, expect, it } from 'vitest'
import { type Feeds, InferenceError, ModelLoadError, type TensorData, tensor } from './backend.js'
import { createModelBatcher } from './batcher.js'
import {
  createTestBackend,
  linearClassifierReference,
  linearClassifierSpec,
  type TestModelSpec,
  testModelBytes,
} from './test-backend.js'

/** x float32 [batch, n] with any n -> total float32 [batch]: rows of different widths. */
const rowSum: TestModelSpec = {
  signature: {
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 'n'] }],
    outputs: [{ name: 'total', type: 'float32', shape: ['batch'] }],
  },
  predictRow(row) {
    const x = row.x as Extract<TensorData, { type: 'float32' }>
    if (x.data.some(Number.isNaN)) throw new Error('NaN in the input')
    return { total: tensor('float32', [1], Float32Array.of(x.data.reduce((a, b) => a + b, 0))) }
  },
}

const row = (...values: number[]): Feeds => ({
  x: tensor('float32', [1, values.length], Float32Array.from(values)),
})

describe('createTestBackend', () => {
  it('loads the model its bytes name and exposes the declared signature', async () => {
    const backend = createTestBackend({ models: { iris: linearClassifierSpec() } })
    const model = await backend.load(testModelBytes('iris'), { intraOpNumThreads: 1 })
    expect(model.signature).toEqual(linearClassifierSpec().signature)
    expect(backend.loads).toEqual([{ model: 'iris', options: { intraOpNumThreads: 1 } }])
  })

  it('refuses bytes that name no model, like the real runtime refuses a non-ONNX file', async () => {
    const backend = createTestBackend({ models: {} })
    const garbage = backend.load(Uint8Array.of(0xff, 0x00, 0x13))
    await expect(garbage).rejects.toBeInstanceOf(ModelLoadError)
    await expect(garbage).rejects.toMatchObject({ reason: 'not_onnx', status: 422 })
    await expect(backend.load(testModelBytes('nope'))).rejects.toMatchObject({
      reason: 'invalid_model',
    })
  })

  it('computes each row with the pure function and records the batch size', async () => {
    const backend = createTestBackend({ models: { iris: linearClassifierSpec() } })
    const model = await backend.load(testModelBytes('iris'))
    const x = [
      [1, 2, 3, 4],
      [0, 0, 0, 0],
    ]
    const outputs = await model.run({ x: tensor('float32', [2, 4], Float32Array.from(x.flat())) })
    const expected = x.map((features) => linearClassifierReference(features))
    expect(outputs.label).toEqual(tensor('int64', [2], BigInt64Array.of(2n, 0n)))
    expect(Array.from(outputs.probabilities?.data as Float32Array)).toEqual(
      Array.from(Float32Array.from(expected.flatMap((e) => e.probabilities))),
    )
    expect(backend.runs).toEqual([{ model: 'iris', batchSize: 2 }])
  })

  it('rejects feeds that do not fit, and runs after release', async () => {
    const backend = createTestBackend({ models: { iris: linearClassifierSpec() } })
    const model = await backend.load(testModelBytes('iris'))
    await expect(
      model.run({ x: tensor('float32', [1, 3], Float32Array.of(1, 2, 3)) }),
    ).rejects.toThrow("input 'x' must have size 4 on axis 1")
    await model.release()
    await model.release()
    await expect(model.run(row(1, 2, 3, 4))).rejects.toBeInstanceOf(InferenceError)
    expect(backend.releases).toEqual(['iris'])
  })

  it('when held, then runs are recorded but answer only once released, and later runs are not held', async () => {
    const backend = createTestBackend({ models: { iris: linearClassifierSpec() } })
    const model = await backend.load(testModelBytes('iris'))
    const release = backend.hold()
    let answered = false
    const held = model.run(row(1, 2, 3, 4)).then((outputs) => {
      answered = true
      return outputs
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(backend.runs).toEqual([{ model: 'iris', batchSize: 1 }])
    expect(answered).toBe(false)
    release()
    await expect(held).resolves.toHaveProperty('label')
    await expect(model.run(row(1, 2, 3, 4))).resolves.toHaveProperty('label')
  })
})

describe('createModelBatcher', () => {
  it('when single predictions arrive together, then the model runs them as one batch', async () => {
    const backend = createTestBackend({ models: { iris: linearClassifierSpec() }, latencyMs: 5 })
    const model = await backend.load(testModelBytes('iris'))
    const sizes: number[] = []
    const batcher = createModelBatcher(model, {
      maxBatchSize: 32,
      maxWaitMs: 10,
      onBatch: (info) => sizes.push(info.size),
    })
    const inputs = Array.from({ length: 12 }, (_, i) => [i, i / 2, -i, 1])
    const results = await Promise.all(inputs.map((x) => batcher.submit(row(...x))))
    results.forEach((result, i) => {
      const expected = linearClassifierReference(inputs[i] as number[])
      expect(result.label).toEqual(tensor('int64', [1], BigInt64Array.of(BigInt(expected.label))))
      expect(result.probabilities?.dims).toEqual([1, 3])
    })
    expect(backend.runs).toEqual([{ model: 'iris', batchSize: 12 }])
    expect(sizes).toEqual([12])
  })

  it('when submits carry several rows, then each gets back as many rows', async () => {
    const backend = createTestBackend({ models: { sum: rowSum } })
    const batcher = createModelBatcher(await backend.load(testModelBytes('sum')), {
      maxBatchSize: 8,
      maxWaitMs: 5,
    })
    const [two, one] = await Promise.all([
      batcher.submit({ x: tensor('float32', [2, 2], Float32Array.of(1, 2, 3, 4)) }),
      batcher.submit(row(10, 20)),
    ])
    expect(two?.total).toEqual(tensor('float32', [2], Float32Array.of(3, 7)))
    expect(one?.total).toEqual(tensor('float32', [1], Float32Array.of(30)))
    expect(backend.runs).toEqual([{ model: 'sum', batchSize: 3 }])
  })

  it('when rows differ in shape, then they run as separate calls of the same flush', async () => {
    const backend = createTestBackend({ models: { sum: rowSum } })
    const batcher = createModelBatcher(await backend.load(testModelBytes('sum')), {
      maxBatchSize: 8,
      maxWaitMs: 5,
    })
    const results = await Promise.all([
      batcher.submit(row(1, 1)),
      batcher.submit(row(1, 1, 1)),
      batcher.submit(row(2, 2)),
    ])
    expect(results.map((result) => Array.from(result.total?.data as Float32Array))).toEqual([
      [2],
      [3],
      [4],
    ])
    expect(backend.runs.map((run) => run.batchSize).sort()).toEqual([1, 2])
  })

  it('when one call of a flush fails, then only its own submits fail', async () => {
    const backend = createTestBackend({ models: { sum: rowSum } })
    const batcher = createModelBatcher(await backend.load(testModelBytes('sum')), {
      maxBatchSize: 8,
      maxWaitMs: 5,
    })
    const [bad, good] = [batcher.submit(row(Number.NaN, 1)), batcher.submit(row(1, 2, 3))]
    await expect(bad).rejects.toThrow('NaN in the input')
    await expect(good).resolves.toEqual({ total: tensor('float32', [1], Float32Array.of(6)) })
  })

  it('when a submit has no batch dim or disagreeing row counts, then it is refused at once', async () => {
    const backend = createTestBackend({ models: { sum: rowSum } })
    const batcher = createModelBatcher(await backend.load(testModelBytes('sum')), {
      maxBatchSize: 8,
      maxWaitMs: 5,
    })
    await expect(batcher.submit({ x: tensor('float32', [], Float32Array.of(1)) })).rejects.toThrow(
      'scalar',
    )
    await expect(
      batcher.submit({
        x: tensor('float32', [1, 1], Float32Array.of(1)),
        y: tensor('float32', [2, 1], Float32Array.of(1, 2)),
      }),
    ).rejects.toThrow('has 2 rows')
    expect(batcher.queued).toBe(0)
  })

  it('when the model answers an output without a batch dim, then the batch fails clearly', async () => {
    const model = {
      run: async () => ({ score: tensor('float32', [1], Float32Array.of(0.5)) }),
    }
    const batcher = createModelBatcher(model, { maxBatchSize: 8, maxWaitMs: 5 })
    const members = [batcher.submit(row(1)), batcher.submit(row(2))]
    for (const member of members)
      await expect(member).rejects.toThrow('serve this model with maxBatchSize 1')
  })
})
