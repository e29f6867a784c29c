import { childPath } from '../../../platform/validation.js'
import { type FieldError, ValidationFailed } from '../../../shared/errors.js'
import { ModelTaskMismatch } from '../errors.js'
import type { PredictionContext, PredictionLog } from '../monitoring/prediction-log.js'
import type { Feeds } from '../runtime/backend.js'
import {
  canonicalInputs,
  checkInputs,
  decodeRows,
  encodeRows,
  type Prediction,
} from './features.js'
import type { ServingMetrics } from './metrics.js'
import { type PredictionCache, predictionCacheKey } from './prediction-cache.js'
import type { ModelServer, ServedVersion } from './types.js'

export interface PredictionServiceDeps {
  server: ModelServer
  /** null when the cache is off. */
  cache: PredictionCache | null
  metrics: ServingMetrics
  /** Most instances one batch request may carry. */
  batchMax: number
  /** Told how long each inference took, queueing included (Server-Timing); unset when off. */
  onInference?: (ms: number) => void
  /** Where served predictions are recorded; none when omitted. */
  predictionLog?: Pick<PredictionLog, 'record' | 'recordAll'>
}

export interface PredictOptions {
  version?: string
  /** Who asked, for the prediction log. */
  context?: PredictionContext
}

/** What one prediction answers, without timing. */
export type PredictionBody = Omit<Prediction, 'classIndex'>

export interface SinglePrediction extends PredictionBody {
  model: string
  version: string
  latency_ms: number
  cached: boolean
}

export interface BatchPrediction {
  model: string
  version: string
  /** One entry per instance, in order; null where the instance was refused. */
  predictions: (PredictionBody | null)[]
  /** Every problem of every refused instance, by path (`body.instances[3].petal_length`). */
  errors: FieldError[]
  latency_ms: number
}

export interface IrisPrediction {
  class: number
  label: string
  probabilities: Record<string, number>
  model: string
  version: string
  cached: boolean
}

/** The model behind the seed-compatible `POST /v1/predict`. */
export const SHORTCUT_MODEL = 'iris'

/** Thrown inside `run` to restart a batch whose instances were sorted by an older card. */
class VersionChanged extends Error {}

const elapsedMs = (startedAt: number) => Math.round((performance.now() - startedAt) * 1000) / 1000

/** The answer without its class index; built field by field, as a rest spread copies slowly. */
function bodyOf({ prediction, probabilities }: Prediction): PredictionBody {
  return probabilities === undefined ? { prediction } : { prediction, probabilities }
}

/**
 * A text-generation model answers prompts, not inputs: its route is `generate`; an image
 * model reads pictures, at `predict/image`.
 */
function predictive(served: ServedVersion): ServedVersion {
  if (served.card.task === 'text-generation') {
    throw new ModelTaskMismatch(`Model ${served.name} generates text: use its generate route.`)
  }
  if (served.card.image) {
    throw new ModelTaskMismatch(
      `Model ${served.name} reads pictures: send one to its predict/image route.`,
    )
  }
  return served
}

/**
 * Predictions from raw, named inputs: validated against the serving version's card,
 * encoded as its tensors, run through the model server's micro-batcher, decoded into labels
 * and probabilities, and cached by model, version and canonical input.
 */
export function createPredictionService({
  server,
  cache,
  metrics,
  batchMax,
  onInference,
  predictionLog,
}: PredictionServiceDeps) {
  function record(
    served: { name: string; version: string },
    inputs: unknown,
    output: PredictionBody,
    latencyMs: number,
    options: PredictOptions,
  ) {
    predictionLog?.record({
      model: served.name,
      version: served.version,
      inputs: inputs as Record<string, unknown>,
      output,
      latencyMs,
      context: options.context,
    })
  }

  /** Runs valid rows; each row's feeds are built for the version that runs them. */
  async function run(
    name: string,
    rows: Record<string, unknown>[],
    options: PredictOptions,
    check: (served: ServedVersion) => void,
  ): Promise<{ served: ServedVersion; predictions: Prediction[] }> {
    let served: ServedVersion | undefined
    const startedAt = onInference ? performance.now() : 0
    try {
      const result = await server.infer(
        name,
        (current): Feeds => {
          served = current
          check(current)
          return encodeRows(current.card, rows)
        },
        options,
      )
      onInference?.(performance.now() - startedAt)
      const predictions = decodeRows(result.served.card, result.outputs, rows.length)
      metrics.predictions(result.served, 'ok', rows.length)
      return { served: result.served, predictions }
    } catch (error) {
      if (served && !(error instanceof ValidationFailed || error instanceof VersionChanged)) {
        metrics.predictions(served, 'error', rows.length)
      }
      throw error
    }
  }

  function refuse(served: ServedVersion, errors: FieldError[], rows = 1): never {
    metrics.predictions(served, 'invalid', rows)
    throw new ValidationFailed(errors, `The input does not fit model ${served.name}.`)
  }

  async function predictOne(
    name: string,
    inputs: unknown,
    options: PredictOptions,
    path = 'body.inputs',
  ): Promise<{ prediction: Prediction; served: ServedVersion; cached: boolean }> {
    const resolved = predictive(await server.resolve(name, options))
    const problems = checkInputs(resolved.card, inputs, path)
    if (problems.length > 0) refuse(resolved, problems)
    const row = inputs as Record<string, unknown>
    const keyFor = (served: ServedVersion) =>
      predictionCacheKey(served.name, served.version, canonicalInputs(served.card, row))
    if (cache) {
      const hit = (await cache.get(keyFor(resolved))) as Prediction | undefined
      metrics.cache(name, hit ? 'hit' : 'miss')
      if (hit) {
        metrics.predictions(resolved, 'ok')
        return { prediction: hit, served: resolved, cached: true }
      }
    }
    const { served, predictions } = await run(name, [row], options, (current) => {
      // Another version was activated since the check: its card decides.
      if (current.version === resolved.version) return
      const again = checkInputs(current.card, inputs, path)
      if (again.length > 0) refuse(current, again)
    })
    const prediction = predictions[0] as Prediction
    // The answer is cached under the version that computed it, so a newly activated version
    // never finds an older version's answers.
    if (cache) await cache.set(keyFor(served), prediction)
    return { prediction, served, cached: false }
  }

  return {
    /** The version that would answer: the pinned one, or the active one. */
    resolve(name: string, options: PredictOptions = {}): Promise<ServedVersion> {
      return server.resolve(name, options)
    },

    async predict(name: string, inputs: unknown, options: PredictOptions = {}) {
      const startedAt = performance.now()
      const { prediction, served, cached } = await predictOne(name, inputs, options)
      const body = bodyOf(prediction)
      const latency = elapsedMs(startedAt)
      metrics.answered(served, latency)
      record(served, inputs, body, latency, options)
      return {
        model: served.name,
        version: served.version,
        ...body,
        latency_ms: latency,
        cached,
      } satisfies SinglePrediction
    },

    /**
     * One inference call for every valid instance. Invalid instances are reported by index
     * while the others are predicted; only a batch with no valid instance is refused (422).
     */
    async predictBatch(
      name: string,
      instances: unknown[],
      options: PredictOptions = {},
      /** Where `instances` starts in the request, for the paths of its problems. */
      offset = 0,
    ): Promise<BatchPrediction> {
      const startedAt = performance.now()
      if (instances.length > batchMax) {
        throw new ValidationFailed(
          [{ path: 'body.instances', message: `must hold at most ${batchMax} instances` }],
          `A batch may hold at most ${batchMax} instances; split it.`,
        )
      }
      let errors: FieldError[] = []
      let valid: number[] = []
      const sort = (served: ServedVersion) => {
        errors = []
        valid = []
        instances.forEach((instance, index) => {
          const problems = checkInputs(
            served.card,
            instance,
            childPath('body.instances', offset + index),
          )
          if (problems.length === 0) valid.push(index)
          else errors.push(...problems)
        })
        if (valid.length === 0) {
          refuse(served, errors, instances.length)
        }
      }
      const resolved = predictive(await server.resolve(name, options))
      sort(resolved)
      let sortedFor = resolved.version
      const { served, predictions } = await run(
        name,
        // Rebuilt below if another version's card re-sorts the instances.
        valid.map((index) => instances[index] as Record<string, unknown>),
        options,
        (current) => {
          if (current.version === sortedFor) return
          sort(current)
          sortedFor = current.version
          throw new VersionChanged()
        },
      ).catch(async (error: unknown) => {
        if (!(error instanceof VersionChanged)) throw error
        // Rare: an activation landed between the check and the queueing; run on the new one.
        return run(
          name,
          valid.map((index) => instances[index] as Record<string, unknown>),
          { version: sortedFor },
          () => {},
        )
      })
      const answers: (PredictionBody | null)[] = instances.map(() => null)
      const latency = elapsedMs(startedAt)
      metrics.answered(served, latency)
      const logged = valid.map((index, row) => {
        const answer = bodyOf(predictions[row] as Prediction)
        answers[index] = answer
        return { inputs: instances[index] as Record<string, unknown>, output: answer }
      })
      predictionLog?.recordAll({
        model: served.name,
        version: served.version,
        predictions: logged,
        latencyMs: latency,
        context: options.context,
      })
      metrics.predictions(served, 'invalid', instances.length - valid.length)
      return {
        model: served.name,
        version: served.version,
        predictions: answers,
        errors,
        latency_ms: latency,
      }
    },

    /** The seed project's `{features: [4 numbers]}` request, answered by iris. */
    async predictIris(features: number[], options: PredictOptions = {}): Promise<IrisPrediction> {
      const startedAt = performance.now()
      const resolved = await server.resolve(SHORTCUT_MODEL)
      const names = resolved.card.inputs.map((input) => input.name)
      if (features.length !== names.length) {
        throw new ValidationFailed([
          {
            path: 'body.features',
            message: `must hold ${names.length} numbers: ${names.join(', ')}`,
          },
        ])
      }
      const inputs = Object.fromEntries(names.map((input, index) => [input, features[index]]))
      try {
        const { prediction, served, cached } = await predictOne(SHORTCUT_MODEL, inputs, options)
        const latency = elapsedMs(startedAt)
        metrics.answered(served, latency)
        record(served, inputs, bodyOf(prediction), latency, options)
        const probabilities = prediction.probabilities ?? {}
        return {
          class:
            prediction.classIndex ??
            Object.keys(probabilities).indexOf(String(prediction.prediction)),
          label: String(prediction.prediction),
          probabilities,
          model: served.name,
          version: served.version,
          cached,
        }
      } catch (error) {
        // Report positions, as the request names none.
        if (error instanceof ValidationFailed) {
          const positions = new Map(
            names.map((input, index) => [
              childPath('body.inputs', input),
              childPath('body.features', index),
            ]),
          )
          throw new ValidationFailed(
            error.errors.map((problem) => ({
              ...problem,
              path: positions.get(problem.path) ?? problem.path,
            })),
            error.message,
          )
        }
        throw error
      }
    },
  }
}

export type PredictionService = ReturnType<typeof createPredictionService>
