import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Feeds,
  InferenceError,
  type LoadedModel,
  ModelLoadError,
  type TensorData,
  tensor,
} from './backend.js'
import { createModelBatcher } from './batcher.js'
import { createOnnxBackend } from './onnx-backend.js'
import { linearClassifierReference, linearClassifierSpec } from './test-backend.js'
import {
  brokenGraphModel,
  float16OutputModel,
  linearClassifierModel,
  matMulChainModel,
  notOnnxBytes,
  stringIdentityModel,
} from './test-models.js'

const backend = createOnnxBackend({ intraOpNumThreads: 1, interOpNumThreads: 1 })

const floats = (output: TensorData | undefined) => Array.from(output?.data as Float32Array)
const features = (...values: number[]): Feeds => ({
  x: tensor('float32', [1, values.length], Float32Array.from(values)),
})

describe('the ONNX backend with a linear classifier', () => {
  let model: LoadedModel
  beforeAll(async () => {
    model = await backend.load(linearClassifierModel())
  })
  afterAll(() => model.release())

  it('reads the names, element types and shapes the graph declares', () => {
    expect(model.signature).toEqual({
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 4] }],
      outputs: [
        { name: 'probabilities', type: 'float32', shape: ['batch', 3] },
        { name: 'label', type: 'int64', shape: ['batch'] },
      ],
    })
    expect(model.signature).toEqual(linearClassifierSpec().signature)
  })

  it('computes softmax(x·W + b) and its argmax as worked out by hand', async () => {
    // x = [1, 2, 3, 4]: logits = [0.1 + 1 + 1.5 - 4, -0.2 + 2 - 1.5 + 1, -1 + 6] = [-1.4, 1.3, 5]
    // x = [0, 0, 0, 0]: logits = b = [0.1, -0.2, 0]
    const softmax = (logits: number[]) => {
      const exps = logits.map(Math.exp)
      const total = exps.reduce((a, b) => a + b, 0)
      return exps.map((e) => e / total)
    }
    const outputs = await model.run({
      x: tensor('float32', [2, 4], Float32Array.of(1, 2, 3, 4, 0, 0, 0, 0)),
    })
    expect(outputs.label).toEqual(tensor('int64', [2], BigInt64Array.of(2n, 0n)))
    expect(outputs.probabilities?.dims).toEqual([2, 3])
    const expected = [...softmax([-1.4, 1.3, 5]), ...softmax([0.1, -0.2, 0])]
    floats(outputs.probabilities).forEach((p, i) => {
      expect(p).toBeCloseTo(expected[i] as number, 6)
    })
  })

  it('agrees with the test double, so tests may use either', async () => {
    const rows = [
      [5.1, 3.5, 1.4, 0.2],
      [6.7, 3.1, 4.4, 1.4],
      [-2, 0.5, 0, 3],
    ]
    const outputs = await model.run({
      x: tensor('float32', [3, 4], Float32Array.from(rows.flat())),
    })
    const expected = rows.map((row) => linearClassifierReference(row))
    expect(Array.from(outputs.label?.data as BigInt64Array)).toEqual(
      expected.map((e) => BigInt(e.label)),
    )
    floats(outputs.probabilities).forEach((p, i) => {
      expect(p).toBeCloseTo(expected.flatMap((e) => e.probabilities)[i] as number, 5)
    })
  })

  it('when the feeds do not fit the graph, then run rejects listing every problem', async () => {
    const run = model.run({
      x: tensor('int64', [1, 3], BigInt64Array.of(1n, 2n, 3n)),
      extra: tensor('float32', [1], Float32Array.of(1)),
    })
    await expect(run).rejects.toBeInstanceOf(InferenceError)
    await expect(run).rejects.toThrow(
      "'extra' is not an input of the model; input 'x' must be float32, got int64; input 'x' must have size 4 on axis 1",
    )
    await expect(model.run({})).rejects.toThrow("input 'x' is missing")
  })

  it('when predictions are batched, then each caller gets what a single run gives it', async () => {
    const rows = Array.from({ length: 24 }, (_, i) => [i / 4, 1 - i / 8, (i % 5) - 2, i % 3])
    const single = await Promise.all(rows.map((row) => model.run(features(...row))))
    const sizes: number[] = []
    const batcher = createModelBatcher(model, {
      maxBatchSize: 10,
      maxWaitMs: 20,
      onBatch: (info) => sizes.push(info.size),
    })
    const batched = await Promise.all(rows.map((row) => batcher.submit(features(...row))))
    batched.forEach((result, i) => {
      expect(result.label).toEqual(single[i]?.label)
      expect(result.probabilities?.dims).toEqual([1, 3])
      floats(result.probabilities).forEach((p, j) => {
        expect(p).toBeCloseTo(floats(single[i]?.probabilities)[j] as number, 6)
      })
    })
    expect(sizes).toEqual([10, 10, 4])
    await batcher.close()
  })
})

describe('loading models with the ONNX backend', () => {
  it('reads string tensors, and a dynamic dim without a name as -1', async () => {
    const model = await backend.load(stringIdentityModel())
    expect(model.signature).toEqual({
      inputs: [{ name: 'text', type: 'string', shape: [-1, 2] }],
      outputs: [{ name: 'same', type: 'string', shape: [-1, 2] }],
    })
    const text = tensor('string', [2, 2], ['a', 'b', 'ç', ''])
    await expect(model.run({ text })).resolves.toEqual({ same: text })
    await model.release()
  })

  it('when the file is not ONNX at all, then load fails with not_onnx', async () => {
    for (const bytes of [
      notOnnxBytes(),
      new TextEncoder().encode('{"model": "iris"}'),
      new Uint8Array(),
    ]) {
      const load = backend.load(bytes)
      await expect(load).rejects.toBeInstanceOf(ModelLoadError)
      await expect(load).rejects.toMatchObject({
        reason: 'not_onnx',
        code: 'MODEL_INVALID',
        status: 422,
        message: 'The file is not an ONNX model: it does not parse as one.',
      })
    }
  })

  it('when a node reads a value nothing produces, then load fails with invalid_model naming it', async () => {
    const load = backend.load(brokenGraphModel())
    await expect(load).rejects.toBeInstanceOf(ModelLoadError)
    await expect(load).rejects.toMatchObject({ reason: 'invalid_model' })
    await expect(load).rejects.toThrow(/^The ONNX model is invalid: .*'missing'/)
  })

  it('when an output is float16, then load fails with unsupported naming the output', async () => {
    const load = backend.load(float16OutputModel())
    await expect(load).rejects.toMatchObject({ reason: 'unsupported', status: 422 })
    await expect(load).rejects.toThrow(
      "The ONNX model cannot be served: output 'half' has element type float16, which is not supported.",
    )
  })

  it('when released, then later runs fail and a second release is harmless', async () => {
    const model = await backend.load(linearClassifierModel())
    const inFlight = model.run(features(1, 2, 3, 4))
    await model.release()
    await expect(inFlight).resolves.toHaveProperty('label')
    await expect(model.run(features(1, 2, 3, 4))).rejects.toThrow('The model has been released.')
    await model.release()
  })

  it('keeps the event loop turning while a heavy inference runs', async () => {
    const model = await backend.load(matMulChainModel(1024, 12), { intraOpNumThreads: 1 })
    const x = tensor('float32', [512, 1024], new Float32Array(512 * 1024).fill(0.5))
    let ticks = 0
    let running = true
    const tick = () => {
      ticks++
      if (running) setImmediate(tick)
    }
    const run = model.run({ x })
    setImmediate(tick)
    const outputs = await run
    running = false
    await model.release()
    expect(outputs.y?.dims).toEqual([512, 1024])
    // Ordering, not speed: had the run blocked the event loop, its answer would have come
    // before any immediate queued after it started. Off the loop, ticks keep coming while it
    // runs, however loaded the machine.
    expect(ticks).toBeGreaterThan(1)
  })
})
