/**
 * A deterministic stand-in for ONNX Runtime with the same interface, for tests of the routes,
 * the registry, batching and caching. Each model is a signature plus a pure function of one
 * row; `testModelBytes(name)` is the "file" that loads it. Every run is recorded:
 *
 *   const backend = createTestBackend({ models: { iris: linearClassifierSpec() }, latencyMs: 5 })
 *   // hand `backend` to buildApp, upload testModelBytes('iris'), send parallel predictions...
 *   expect(backend.runs.some((run) => run.batchSize > 1)).toBe(true)
 */
import { setTimeout as sleep } from 'node:timers/promises'
import {
  type Feeds,
  feedMismatches,
  type InferenceBackend,
  InferenceError,
  type LoadedModel,
  type LoadOptions,
  ModelLoadError,
  type ModelSignature,
  type TensorData,
  tensor,
} from './backend.js'
import { splitRows, stackRows } from './batcher.js'

export interface TestModelSpec {
  signature: ModelSignature
  /**
   * One row's outputs from one row's inputs; every tensor in and out has a leading dim of 1.
   * Throwing fails the whole run, as a runtime error would.
   */
  predictRow: (row: Feeds) => Feeds
}

export interface TestBackendOptions {
  /** The models `testModelBytes(name)` loads, by name. */
  models: Record<string, TestModelSpec>
  /** Added to every run on a timer, like a real model's compute time; the loop stays free. */
  latencyMs?: number
}

export interface TestRun {
  model: string
  /** Rows in the run: dim 0 of its inputs. */
  batchSize: number
}

export interface TestBackend extends InferenceBackend {
  /** Every run of every loaded model, in order. */
  readonly runs: TestRun[]
  readonly loads: { model: string; options: LoadOptions }[]
  readonly releases: string[]
  /**
   * Holds every run that starts from now on (each is recorded in `runs` first) until the
   * returned function is called: a slow model whose slowness the test decides, not the clock.
   */
  hold(): () => void
}

const MAGIC = 'orderflow-test-model:'

/** The bytes that make a test backend load the model called `name`. */
export function testModelBytes(name: string): Uint8Array {
  return new TextEncoder().encode(`${MAGIC}${name}`)
}

function modelName(bytes: Uint8Array): string | undefined {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    return text.startsWith(MAGIC) ? text.slice(MAGIC.length) : undefined
  } catch {
    return undefined
  }
}

export function createTestBackend(options: TestBackendOptions): TestBackend {
  const runs: TestRun[] = []
  const loads: TestBackend['loads'] = []
  const releases: string[] = []
  let held: Promise<void> | undefined

  function loaded(name: string, spec: TestModelSpec): LoadedModel {
    let released = false
    return {
      signature: structuredClone(spec.signature),
      async run(feeds) {
        if (released) throw new InferenceError('The model has been released.')
        const problems = feedMismatches(spec.signature, feeds)
        if (problems.length > 0) {
          throw new InferenceError(`The feeds do not fit the model: ${problems.join('; ')}.`)
        }
        const first = feeds[spec.signature.inputs[0]?.name ?? ''] as TensorData | undefined
        const batchSize = first?.dims[0] ?? 1
        runs.push({ model: name, batchSize })
        if (held) await held
        if (options.latencyMs) await sleep(options.latencyMs)
        const ones = new Array<number>(batchSize).fill(1)
        const split = Object.entries(feeds).map(
          ([input, data]) => [input, splitRows(data, ones)] as const,
        )
        const rows = ones.map((_, index) =>
          Object.fromEntries(split.map(([input, parts]) => [input, parts[index] as TensorData])),
        )
        let outputs: Feeds[]
        try {
          outputs = rows.map((row) => spec.predictRow(row))
        } catch (error) {
          throw new InferenceError(`The model failed to run: ${String(error)}`, { cause: error })
        }
        return Object.fromEntries(
          spec.signature.outputs.map((output) => [
            output.name,
            stackRows(outputs.map((row) => row[output.name] as TensorData)),
          ]),
        )
      },
      async release() {
        if (released) return
        released = true
        releases.push(name)
      },
    }
  }

  return {
    name: 'test',
    runs,
    loads,
    releases,
    hold() {
      let release = () => {}
      const gate = new Promise<void>((resolve) => {
        release = resolve
      })
      held = gate
      return () => {
        if (held === gate) held = undefined
        release()
      }
    },
    async load(bytes, loadOptions = {}) {
      const name = modelName(bytes)
      if (name === undefined) {
        throw new ModelLoadError(
          'not_onnx',
          'The file is not an ONNX model: it does not parse as one.',
        )
      }
      const spec = options.models[name]
      if (spec === undefined) {
        throw new ModelLoadError(
          'invalid_model',
          `The ONNX model is invalid: no test model '${name}'.`,
        )
      }
      loads.push({ model: name, options: loadOptions })
      return loaded(name, spec)
    },
  }
}

export interface LinearClassifier {
  /** `weights[i][j]`: weight of feature i for class j. */
  weights: number[][]
  bias: number[]
}

/** A 4-feature, 3-class classifier small enough to check by hand. */
export const IRIS_LIKE: LinearClassifier = {
  weights: [
    [1, 0, -1],
    [0, 1, 0],
    [0.5, -0.5, 2],
    [-1, 0.25, 0],
  ],
  bias: [0.1, -0.2, 0],
}

/** `softmax(x·W + b)` and its argmax for one row, in double precision. */
export function linearClassifierReference(
  x: readonly number[],
  model: LinearClassifier = IRIS_LIKE,
): { probabilities: number[]; label: number } {
  const logits = model.bias.map((b, j) =>
    x.reduce((sum, xi, i) => sum + xi * (model.weights[i]?.[j] ?? 0), b),
  )
  const max = Math.max(...logits)
  const exps = logits.map((logit) => Math.exp(logit - max))
  const total = exps.reduce((sum, e) => sum + e, 0)
  return { probabilities: exps.map((e) => e / total), label: logits.indexOf(max) }
}

/**
 * The signature and computation of `linearClassifierModel` from test-models.ts:
 * x float32 [batch, features] -> probabilities float32 [batch, classes], label int64 [batch].
 */
export function linearClassifierSpec(model: LinearClassifier = IRIS_LIKE): TestModelSpec {
  const features = model.weights.length
  const classes = model.bias.length
  return {
    signature: {
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', features] }],
      outputs: [
        { name: 'probabilities', type: 'float32', shape: ['batch', classes] },
        { name: 'label', type: 'int64', shape: ['batch'] },
      ],
    },
    predictRow(row) {
      const x = Array.from((row.x as Extract<TensorData, { type: 'float32' }>).data)
      const { probabilities, label } = linearClassifierReference(x, model)
      return {
        probabilities: tensor('float32', [1, classes], Float32Array.from(probabilities)),
        label: tensor('int64', [1], BigInt64Array.of(BigInt(label))),
      }
    },
  }
}
