import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MODELS_DIR, TRAINERS, train } from '../../../scripts/train.js'
import type { GoldenFile } from '../../../scripts/training/artifacts.js'
import { assertValid } from '../../platform/validation.js'
import { type ModelCard, ModelCardSchema } from './card.js'
import { encodeRows } from './serving/features.js'

const MODELS = Object.keys(TRAINERS)

const readJson = async <T>(file: string): Promise<T> =>
  JSON.parse(await readFile(join(MODELS_DIR, file), 'utf8')) as T

/** The graph's input tensors from named inputs, laid out as the serving side lays them out. */
function feedsFor(card: ModelCard, inputs: Record<string, number | string>[]) {
  return Object.fromEntries(
    Object.entries(encodeRows(card, inputs)).map(([name, { type, data, dims }]) => [
      name,
      new ort.Tensor(type, data, dims),
    ]),
  )
}

describe('shipped models', () => {
  let retrained: string

  beforeAll(async () => {
    retrained = await mkdtemp(join(tmpdir(), 'orderflow-models-'))
    await train(retrained)
  })

  afterAll(async () => {
    await rm(retrained, { recursive: true, force: true })
  })

  describe.each(MODELS)('%s', (name) => {
    it.each(['onnx', 'card.json', 'golden.json'])(
      'when training runs again, then %s is byte for byte the committed file',
      async (suffix) => {
        const file = `${name}.${suffix}`
        const fresh = await readFile(join(retrained, file))
        const committed = await readFile(join(MODELS_DIR, file))
        expect(fresh.equals(committed), `${file} differs: run npm run train and commit`).toBe(true)
      },
    )

    it('has a card that matches ModelCardSchema', async () => {
      const card = await readJson<unknown>(`${name}.card.json`)
      expect(() => assertValid(ModelCardSchema, card, 'card')).not.toThrow()
    })

    it('when ONNX Runtime runs the golden rows from named inputs, then it answers the golden outputs', async () => {
      const card = await readJson<ModelCard>(`${name}.card.json`)
      const golden = await readJson<GoldenFile>(`${name}.golden.json`)
      const session = await ort.InferenceSession.create(join(MODELS_DIR, `${name}.onnx`))
      try {
        expect(session.inputNames).toEqual(card.preprocessing.tensors.map((tensor) => tensor.name))
        expect(session.outputNames).toEqual(card.outputs.map((output) => output.name))
        const results = await session.run(
          feedsFor(
            card,
            golden.cases.map((c) => c.input),
          ),
        )
        for (const output of card.outputs) {
          const tensor = results[output.name] as ort.Tensor
          const width = tensor.dims.length > 1 ? (tensor.dims[1] as number) : 1
          expect(tensor.dims[0]).toBe(golden.cases.length)
          golden.cases.forEach((goldenCase, i) => {
            const expected = [goldenCase.output[output.name] ?? []].flat()
            const actual = Array.from(tensor.data as ArrayLike<number | bigint>)
              .slice(i * width, (i + 1) * width)
              .map(Number)
            expect(actual).toHaveLength(expected.length)
            actual.forEach((value, k) => {
              const want = expected[k] as number
              expect(Math.abs(value - want)).toBeLessThanOrEqual(
                golden.tolerance * Math.max(1, Math.abs(want)),
              )
            })
          })
        }
      } finally {
        await session.release()
      }
    })
  })

  it('iris classifies at least 90% of its held-out rows correctly', async () => {
    const card = await readJson<ModelCard>('iris.card.json')
    expect(card.task).toBe('classification')
    expect(card.metrics.accuracy).toBeGreaterThanOrEqual(0.9)
    expect(card.outputs.find((output) => output.name === 'label')?.labels).toEqual([
      'setosa',
      'versicolor',
      'virginica',
    ])
  })

  it('car-price reports held-out errors in euros that beat predicting the mean', async () => {
    const card = await readJson<ModelCard>('car-price.card.json')
    const { rmse, mae, r2, rmse_log, r2_log } = card.metrics
    expect(card.task).toBe('regression')
    expect(card.inputs.filter((input) => input.type === 'category')).toHaveLength(8)
    expect(card.inputs.filter((input) => input.type !== 'category')).toHaveLength(8)
    expect(mae).toBeGreaterThan(0)
    expect(rmse).toBeGreaterThanOrEqual(mae as number)
    expect(r2).toBeGreaterThan(0.5)
    expect(rmse_log).toBeLessThan(0.3)
    expect(r2_log).toBeGreaterThan(0.9)
  })

  it('car-price imputes missing and unknown inputs with the defaults its card declares', async () => {
    const card = await readJson<ModelCard>('car-price.card.json')
    const session = await ort.InferenceSession.create(join(MODELS_DIR, 'car-price.onnx'))
    try {
      const required = Object.fromEntries([
        ['brand', 'skoda'],
        ['fuel_type', 'diesel'],
        ['transmission', 'manual'],
        ['year', 2018],
        ['mileage_km', 90_000],
      ] as const)
      const defaults = Object.fromEntries(
        card.inputs.flatMap((input) =>
          input.default === undefined ? [] : [[input.name, input.default]],
        ),
      )
      const unknown = Object.fromEntries(
        card.inputs.flatMap((input) =>
          input.type === 'category' && !input.required ? [[input.name, 'unheard-of']] : [],
        ),
      )
      const { price } = await session.run(
        feedsFor(card, [required, { ...required, ...defaults }, { ...required, ...unknown }]),
      )
      const [missing, explicit, unknownPrice] = Array.from(price?.data as Float32Array)
      expect(missing).toBeGreaterThan(0)
      expect(missing).toBe(explicit)
      expect(unknownPrice).toBe(explicit)
    } finally {
      await session.release()
    }
  })
})
