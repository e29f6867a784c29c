import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { BatchInfo } from '../runtime/batcher.js'
import type { ModelStats } from './stats.js'
import type { ServedVersion } from './types.js'

export type PredictionOutcome = 'ok' | 'invalid' | 'error'

export interface ServingMetrics {
  /** Feeds the inference and batch-size histograms; the model server calls it per batch. */
  batch(served: ServedVersion, info: BatchInfo): void
  predictions(served: ServedVersion, outcome: PredictionOutcome, count?: number): void
  /** One request answered (a single prediction, a batch, a picture), for the recent windows. */
  answered(served: ServedVersion, latencyMs: number): void
  cache(model: string, result: 'hit' | 'miss'): void
  /** A request refused before it ran, e.g. because the model's queue was full. */
  rejected(served: ServedVersion, reason: 'queue_full'): void
}

/**
 * The model-serving series, and the recent windows of `stats`. Labels are model names and
 * versions the registry knows, never names taken from a request, so a client cannot grow
 * the series count.
 */
export function createServingMetrics(
  registry: Registry,
  loaded: () => number,
  stats: Pick<ModelStats, 'answered' | 'batch'>,
): ServingMetrics {
  const inferenceSeconds = new Histogram({
    name: 'model_inference_seconds',
    help: 'Duration of one inference call (one micro-batch), by model and version.',
    labelNames: ['model', 'version'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  })
  const batchSize = new Histogram({
    name: 'model_batch_size',
    help: 'Rows in one inference call, by model.',
    labelNames: ['model'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    registers: [registry],
  })
  const predictions = new Counter({
    name: 'predictions_total',
    help: 'Predictions (rows) by model, version and outcome: ok, invalid (refused input), error.',
    labelNames: ['model', 'version', 'outcome'],
    registers: [registry],
  })
  const cacheRequests = new Counter({
    name: 'prediction_cache_requests_total',
    help: 'Prediction cache lookups by model and result (hit or miss).',
    labelNames: ['model', 'result'],
    registers: [registry],
  })
  const rejected = new Counter({
    name: 'model_predictions_rejected_total',
    help: 'Prediction requests refused without running, by model and reason (queue_full).',
    labelNames: ['model', 'reason'],
    registers: [registry],
  })
  new Gauge({
    name: 'models_loaded',
    help: 'Model versions loaded in this process.',
    registers: [registry],
    collect() {
      this.set(loaded())
    },
  })
  return {
    batch(served, info) {
      inferenceSeconds.observe({ model: served.name, version: served.version }, info.runMs / 1000)
      batchSize.observe({ model: served.name }, info.size)
      stats.batch(served.name, info.size)
    },
    predictions(served, outcome, count = 1) {
      if (count > 0)
        predictions.inc({ model: served.name, version: served.version, outcome }, count)
    },
    answered(served, latencyMs) {
      stats.answered(served.name, latencyMs)
    },
    cache(model, result) {
      cacheRequests.inc({ model, result })
    },
    rejected(served, reason) {
      rejected.inc({ model: served.name, reason })
    },
  }
}
