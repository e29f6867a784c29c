/**
 * Recent serving figures per model, in fixed time windows, for people watching one model
 * (the console's charts). Prometheus keeps the long view from `/metrics`; its histograms
 * here are cumulative since start and their buckets coarse (a p99 somewhere between 1 and
 * 2.5 ms), so they cannot answer "what were the percentiles over the last minute". This
 * keeps, per model and window, a log-spaced latency histogram fine enough for percentiles
 * within LATENCY_RATIO of the truth, in a few hundred counters, whatever the traffic.
 */

/** Neighbouring latency buckets differ by 5 %: a percentile is within 5 % of the truth. */
const LATENCY_RATIO = 1.05
/** The first bucket holds everything up to 10 µs; the last, everything from about 2 minutes. */
const LATENCY_FLOOR_MS = 0.01
const LATENCY_BUCKETS =
  1 + Math.ceil(Math.log(120_000 / LATENCY_FLOOR_MS) / Math.log(LATENCY_RATIO))
const PERCENTILES = [
  ['p50', 0.5],
  ['p95', 0.95],
  ['p99', 0.99],
] as const

export interface StatsOptions {
  windowMs: number
  /** Windows kept per model, the current one included. */
  windows: number
  now?: () => number
}

export interface LatencyPercentiles {
  p50: number
  p95: number
  p99: number
}

export interface WindowFigures {
  /** Requests answered, from HTTP, WebSocket and batch jobs alike. */
  requests: number
  /** Requests per second over the time the figures cover. */
  rate_per_second: number
  /** Of the answered requests, in milliseconds; null without any. */
  latency_ms: LatencyPercentiles | null
  /** Inference calls (micro-batches) run. */
  batches: number
  /** Rows per inference call; null without any call. */
  batch_size: { mean: number; max: number } | null
}

export interface ModelStatsReport {
  model: string
  window_seconds: number
  from: string
  to: string
  /** Every window of the span, oldest first; the last one is still filling. */
  windows: (WindowFigures & { start: string })[]
  totals: WindowFigures
}

interface Window {
  start: number
  requests: number
  latency: Uint32Array
  batches: number
  batchRows: number
  batchMax: number
}

function latencyBucket(ms: number): number {
  if (!(ms > LATENCY_FLOOR_MS)) return 0
  const index = Math.ceil(Math.log(ms / LATENCY_FLOOR_MS) / Math.log(LATENCY_RATIO))
  return Math.min(index, LATENCY_BUCKETS - 1)
}

/** The bucket's upper bound: a percentile reads high by less than one bucket's width. */
const bucketBoundMs = (index: number) =>
  Math.round(LATENCY_FLOOR_MS * LATENCY_RATIO ** index * 1000) / 1000

function percentiles(histogram: Uint32Array, count: number): LatencyPercentiles | null {
  if (count === 0) return null
  const found: Partial<LatencyPercentiles> = {}
  let seen = 0
  let next = 0
  for (let index = 0; index < histogram.length && next < PERCENTILES.length; index++) {
    seen += histogram[index] as number
    while (next < PERCENTILES.length) {
      const [name, quantile] = PERCENTILES[next] as (typeof PERCENTILES)[number]
      if (seen < Math.ceil(quantile * count)) break
      found[name] = bucketBoundMs(index)
      next++
    }
  }
  return found as LatencyPercentiles
}

function emptyWindow(start: number): Window {
  return {
    start,
    requests: 0,
    latency: new Uint32Array(LATENCY_BUCKETS),
    batches: 0,
    batchRows: 0,
    batchMax: 0,
  }
}

function figures(window: Window, seconds: number): WindowFigures {
  return {
    requests: window.requests,
    rate_per_second: Math.round((window.requests / seconds) * 1000) / 1000,
    latency_ms: percentiles(window.latency, window.requests),
    batches: window.batches,
    batch_size:
      window.batches === 0
        ? null
        : {
            mean: Math.round((window.batchRows / window.batches) * 100) / 100,
            max: window.batchMax,
          },
  }
}

/**
 * Per-model windows in this process. Model names come from the registry (served versions),
 * never from a request, so the map grows only with registered models.
 */
export function createModelStats({ windowMs, windows, now = Date.now }: StatsOptions) {
  const byModel = new Map<string, Window[]>()

  /** The model's current window, after dropping the ones that have aged out. */
  function current(model: string): Window {
    const start = Math.floor(now() / windowMs) * windowMs
    let kept = byModel.get(model)
    if (!kept) {
      kept = []
      byModel.set(model, kept)
    }
    const last = kept.at(-1)
    if (last?.start === start) return last
    const oldest = start - (windows - 1) * windowMs
    while (kept.length > 0 && (kept[0] as Window).start < oldest) kept.shift()
    const fresh = emptyWindow(start)
    kept.push(fresh)
    return fresh
  }

  return {
    /** One request answered in `latencyMs`. */
    answered(model: string, latencyMs: number) {
      const window = current(model)
      window.requests++
      const bucket = latencyBucket(latencyMs)
      window.latency[bucket] = (window.latency[bucket] ?? 0) + 1
    },

    /** One inference call of `rows` rows. */
    batch(model: string, rows: number) {
      const window = current(model)
      window.batches++
      window.batchRows += rows
      window.batchMax = Math.max(window.batchMax, rows)
    },

    /** The span's windows, every one of them (empty ones too), and their sum. */
    report(model: string): ModelStatsReport {
      const at = now()
      const start = Math.floor(at / windowMs) * windowMs
      const first = start - (windows - 1) * windowMs
      const kept = new Map((byModel.get(model) ?? []).map((window) => [window.start, window]))
      const total = emptyWindow(first)
      const listed: ModelStatsReport['windows'] = []
      for (let windowStart = first; windowStart <= start; windowStart += windowMs) {
        const window = kept.get(windowStart) ?? emptyWindow(windowStart)
        // The current window has covered only the time since it began.
        const seconds = windowStart === start ? Math.max(at - start, 1000) / 1000 : windowMs / 1000
        listed.push({ start: new Date(windowStart).toISOString(), ...figures(window, seconds) })
        total.requests += window.requests
        for (let index = 0; index < LATENCY_BUCKETS; index++)
          total.latency[index] = (total.latency[index] ?? 0) + (window.latency[index] ?? 0)
        total.batches += window.batches
        total.batchRows += window.batchRows
        total.batchMax = Math.max(total.batchMax, window.batchMax)
      }
      const spanSeconds = ((windows - 1) * windowMs + Math.max(at - start, 1000)) / 1000
      return {
        model,
        window_seconds: windowMs / 1000,
        from: new Date(first).toISOString(),
        to: new Date(at).toISOString(),
        windows: listed,
        totals: figures(total, spanSeconds),
      }
    },
  }
}

export type ModelStats = ReturnType<typeof createModelStats>
