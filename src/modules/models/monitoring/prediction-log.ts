import type { FastifyBaseLogger } from 'fastify'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Caller } from '../../../shared/caller.js'
import { encodeLoggedRequest, type PredictionLogRepository } from './repository.js'

/** Who asked for a prediction and under which request: what the log records beside it. */
export interface PredictionContext {
  requestId?: string
  caller?: Pick<Caller, 'userId' | 'apiKeyId'> | null
}

export interface LoggedPrediction {
  model: string
  version: string
  inputs: Record<string, unknown>
  output: Record<string, unknown>
  latencyMs: number
  context?: PredictionContext
}

/** The predictions of one request: a batch, or a single one. */
export interface LoggedPredictions {
  model: string
  version: string
  predictions: ReadonlyArray<{ inputs: Record<string, unknown>; output: Record<string, unknown> }>
  latencyMs: number
  context?: PredictionContext
}

export interface PredictionLogDeps {
  repository: Pick<PredictionLogRepository, 'insertEncoded'>
  /** The share of one model's predictions to record, 0-1. */
  sampleRate: (model: string) => number
  /** Predictions waiting to be written; beyond, new ones are dropped and counted. */
  bufferMax: number
  flushIntervalMs: number
  metrics: Registry
  log: FastifyBaseLogger
  random?: () => number
  now?: () => Date
}

export interface PredictionLog {
  /** Takes a prediction for the log, or drops it; never waits and never throws. */
  record(prediction: LoggedPrediction): void
  /** The same for every prediction of one request, each sampled on its own. */
  recordAll(predictions: LoggedPredictions): void
  /** Writes what is buffered now (the timer does this on its own). */
  flush(): Promise<void>
  /** Stops the timer and writes what is left. */
  close(): Promise<void>
}

/**
 * The prediction log's writer: predictions are sampled, buffered in memory and written in
 * batches by a timer, so the request path pays for encoding its rows as JSON text (flat
 * strings, which cost the garbage collector little while they wait) and never for a database
 * round trip. The buffer is bounded: when the database is slower than the traffic, the
 * newest predictions are dropped and counted rather than held, since a log that grows
 * without bound would cost the service its memory.
 */
export function createPredictionLog({
  repository,
  sampleRate,
  bufferMax,
  flushIntervalMs,
  metrics,
  log,
  random = Math.random,
  now = () => new Date(),
}: PredictionLogDeps): PredictionLog {
  const records = new Counter({
    name: 'prediction_log_records_total',
    help: 'Predictions offered to the prediction log, by outcome: written, dropped (buffer full) or failed (write error).',
    labelNames: ['outcome'] as const,
    registers: [metrics],
  })
  /** Requests' predictions as `encodeLoggedRequest` makes them, and how many rows they hold. */
  let buffer: string[] = []
  let bufferedRows = 0
  new Gauge({
    name: 'prediction_log_buffered',
    help: 'Predictions waiting to be written to the prediction log.',
    registers: [metrics],
    collect() {
      this.set(bufferedRows)
    },
  })
  const written = records.labels('written')
  const dropped = records.labels('dropped')
  const failed = records.labels('failed')

  let writing: Promise<void> = Promise.resolve()
  const timer = setInterval(() => void flush(), flushIntervalMs)
  timer.unref()

  function flush(): Promise<void> {
    // One write at a time, so rows reach the table in the order they were served.
    writing = writing.then(async () => {
      if (buffer.length === 0) return
      const requests = buffer
      const rows = bufferedRows
      buffer = []
      bufferedRows = 0
      try {
        await repository.insertEncoded(requests)
        written.inc(rows)
      } catch (error) {
        failed.inc(rows)
        log.warn({ err: error, rows }, 'prediction log write failed; rows dropped')
      }
    })
    return writing
  }

  function recordAll({ model, version, predictions, latencyMs, context }: LoggedPredictions) {
    const rate = sampleRate(model)
    if (rate <= 0) return
    const sampled = rate < 1 ? predictions.filter(() => random() < rate) : predictions
    const room = Math.max(0, bufferMax - bufferedRows)
    const taken = sampled.length > room ? sampled.slice(0, room) : sampled
    if (taken.length < sampled.length) dropped.inc(sampled.length - taken.length)
    if (taken.length === 0) return
    const request = {
      model,
      version,
      latencyMs,
      requestId: context?.requestId ?? null,
      userId: context?.caller?.userId ?? null,
      apiKeyId: context?.caller?.apiKeyId ?? null,
      createdAt: now(),
    }
    try {
      buffer.push(encodeLoggedRequest(request, taken))
      bufferedRows += taken.length
    } catch (error) {
      // An input JSON cannot hold (a BigInt, a cycle) costs its rows, never the request.
      failed.inc(taken.length)
      log.warn({ err: error, model }, 'prediction log rows could not be encoded; rows dropped')
    }
  }

  return {
    record({ inputs, output, ...request }) {
      recordAll({ ...request, predictions: [{ inputs, output }] })
    },
    recordAll,
    flush,
    async close() {
      clearInterval(timer)
      await flush()
    },
  }
}
