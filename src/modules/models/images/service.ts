import type { ImageInput } from '../card.js'
import { ModelTaskMismatch } from '../errors.js'
import type { PredictionLog } from '../monitoring/prediction-log.js'
import { InferenceError } from '../runtime/backend.js'
import { decodeRows } from '../serving/features.js'
import type { ServingMetrics } from '../serving/metrics.js'
import type { PredictOptions } from '../serving/prediction-service.js'
import type { ModelServer, ServedVersion } from '../serving/types.js'
import { type ImageInfo, type ImageLimits, prepareImage } from './decode.js'
import { ImageTooManyPixels, ImageUnreadable, UnsupportedImageType } from './errors.js'

export interface ImagePredictionDeps {
  server: ModelServer
  metrics: ServingMetrics
  limits: ImageLimits
  /** Told how long each inference took, queueing included (Server-Timing); unset when off. */
  onInference?: (ms: number) => void
  /** Where served predictions are recorded; none when omitted. */
  predictionLog?: Pick<PredictionLog, 'record'>
}

export interface ImagePredictOptions extends PredictOptions {
  /** Labels answered, most probable first; capped at the model's label count. */
  topK: number
}

export interface LabelProbability {
  label: string
  probability: number
}

export interface ImagePrediction {
  model: string
  version: string
  prediction: string
  probability: number
  top_k: LabelProbability[]
  image: Omit<ImageInfo, 'bytes'>
  latency_ms: number
}

const elapsedMs = (startedAt: number) => Math.round((performance.now() - startedAt) * 1000) / 1000

/** Refusals of the picture itself, counted as invalid input rather than a failure. */
const isInvalidPicture = (error: unknown) =>
  error instanceof UnsupportedImageType ||
  error instanceof ImageTooManyPixels ||
  error instanceof ImageUnreadable

function softmax(values: readonly number[]): number[] {
  const max = Math.max(...values)
  const exps = values.map((value) => Math.exp(value - max))
  const sum = exps.reduce((a, b) => a + b, 0)
  return exps.map((value) => value / sum)
}

/** The picture spec of an image model; any other model is the wrong one for a picture. */
function imageSpecOf(served: ServedVersion): ImageInput {
  if (!served.card.image) {
    throw new ModelTaskMismatch(
      served.card.task === 'text-generation'
        ? `Model ${served.name} generates text: use its generate route.`
        : `Model ${served.name} takes named inputs, not pictures: use its predict route.`,
    )
  }
  return served.card.image
}

/**
 * Predictions from uploaded pictures: the file is checked and decoded as the serving
 * version's card says, run through that version's micro-batcher with every other
 * prediction, and answered as the k most probable labels.
 */
export function createImagePredictionService({
  server,
  metrics,
  limits,
  onInference,
  predictionLog,
}: ImagePredictionDeps) {
  return {
    async predict(
      name: string,
      bytes: Buffer,
      options: ImagePredictOptions,
    ): Promise<ImagePrediction> {
      const startedAt = performance.now()
      const served = await server.resolve(name, options)
      const image = imageSpecOf(served)
      let prepared: Awaited<ReturnType<typeof prepareImage>>
      try {
        prepared = await prepareImage(bytes, image, limits)
      } catch (error) {
        if (isInvalidPicture(error)) metrics.predictions(served, 'invalid')
        throw error
      }
      // Pinned to the version whose card shaped the tensor, even if another was activated
      // while the picture decoded.
      const feeds = { [image.input]: prepared.tensor }
      let result: Awaited<ReturnType<ModelServer['infer']>>
      const inferredAt = performance.now()
      try {
        result = await server.infer(name, feeds, { version: served.version })
      } catch (error) {
        metrics.predictions(served, 'error')
        throw error
      }
      onInference?.(performance.now() - inferredAt)
      const [decoded] = decodeRows(served.card, result.outputs, 1)
      const scores = decoded?.probabilities
      if (!scores) {
        throw new InferenceError(`Model ${name} answered no labelled scores for the picture.`)
      }
      const labels = Object.keys(scores)
      const values = Object.values(scores)
      const probabilities = image.scores === 'logits' ? softmax(values) : values
      const ranked = labels
        .map((label, k) => ({ label, probability: probabilities[k] as number }))
        .sort((a, b) => b.probability - a.probability)
      const top = ranked.slice(0, Math.min(options.topK, ranked.length))
      const best = top[0] as LabelProbability
      metrics.predictions(served, 'ok')
      const latency = elapsedMs(startedAt)
      metrics.answered(served, latency)
      const { bytes: _bytes, ...info } = prepared.info
      predictionLog?.record({
        model: served.name,
        version: served.version,
        inputs: { image: prepared.info },
        output: { prediction: best.label, top_k: top },
        latencyMs: latency,
        context: options.context,
      })
      return {
        model: served.name,
        version: served.version,
        prediction: best.label,
        probability: best.probability,
        top_k: top,
        image: info,
        latency_ms: latency,
      }
    },
  }
}

export type ImagePredictionService = ReturnType<typeof createImagePredictionService>
