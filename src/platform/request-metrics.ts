import type { Counter, Registry } from 'prom-client'

/** Request latency buckets in seconds, from a cache hit to a slow upload. */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

type Labels = { method: string; route: string; status_code: string }

/** One series: the requests of one method, route template and status. */
interface Series {
  labels: Labels
  count: number
  sum: number
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  perBucket: Float64Array
}

/** One sample line of the exposition, as prom-client's registry renders it. */
interface Sample {
  metricName: string
  labels: Record<string, string | number>
  value: number
}

/** What prom-client's registry asks of a metric to render and reset it. */
interface RegisteredMetric {
  name: string
  help: string
  type: 'counter' | 'histogram'
  aggregator: 'sum'
  get(): Promise<Omit<RegisteredMetric, 'get' | 'reset'> & { values: Sample[] }>
  reset(): void
}

/**
 * `http_requests_total` and `http_request_duration_seconds`, counted in plain numbers on
 * the request and turned into samples only when /metrics is read.
 *
 * prom-client's `inc` and `observe` validate and hash the label object on every call (a
 * child from `labels()` hashes again on each use): with the bucket search, the metrics hook
 * was about 4 % of the CPU of `GET /health` in a `perf` profile under load. Here a request
 * costs one map lookup by a string key and a few additions. The registry renders these two
 * as it renders its own Counter and Histogram (it asks any metric for `get()`), and the
 * text is the same: names, help, labels in the same order, cumulative buckets, +Inf, sum
 * and count.
 */
export class RequestMetrics {
  readonly #series = new Map<string, Series>()

  constructor(registry: Registry) {
    const requests = this.#metric(
      'http_requests_total',
      'HTTP requests answered, by method, route template and status.',
      'counter',
      (series, name) => [{ metricName: name, labels: series.labels, value: series.count }],
    )
    const durations = this.#metric(
      'http_request_duration_seconds',
      'HTTP request latency in seconds, by method, route template and status.',
      'histogram',
      histogramSamples,
    )
    // The registry's parameter type names its own classes; it calls only what is above.
    for (const metric of [requests, durations]) {
      registry.registerMetric(metric as unknown as Counter)
    }
  }

  /** Counts one answered request; `seconds` is its latency. */
  record(method: string, route: string, statusCode: number, seconds: number): void {
    const key = `${method} ${statusCode} ${route}`
    let series = this.#series.get(key)
    if (!series) {
      series = {
        labels: { method, route, status_code: String(statusCode) },
        count: 0,
        sum: 0,
        perBucket: new Float64Array(REQUEST_DURATION_BUCKETS.length + 1),
      }
      this.#series.set(key, series)
    }
    series.count += 1
    series.sum += seconds
    const bucket = bucketOf(seconds)
    series.perBucket[bucket] = (series.perBucket[bucket] ?? 0) + 1
  }

  #metric(
    name: string,
    help: string,
    type: RegisteredMetric['type'],
    samples: (series: Series, name: string) => Sample[],
  ): RegisteredMetric {
    return {
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => ({
        name,
        help,
        type,
        aggregator: 'sum',
        values: [...this.#series.values()].flatMap((series) => samples(series, name)),
      }),
      reset: () => this.#series.clear(),
    }
  }
}

/** The first bucket whose bound holds `seconds`, or the last slot (+Inf only). */
function bucketOf(seconds: number): number {
  let bucket = 0
  for (const bound of REQUEST_DURATION_BUCKETS) {
    if (seconds <= bound) return bucket
    bucket += 1
  }
  return bucket
}

/** One series as prom-client's Histogram writes it: cumulative buckets, +Inf, sum, count. */
function histogramSamples(series: Series, name: string): Sample[] {
  const samples: Sample[] = []
  let cumulative = 0
  REQUEST_DURATION_BUCKETS.forEach((bound, index) => {
    cumulative += series.perBucket[index] ?? 0
    samples.push({
      metricName: `${name}_bucket`,
      labels: { le: bound, ...series.labels },
      value: cumulative,
    })
  })
  samples.push(
    { metricName: `${name}_bucket`, labels: { le: '+Inf', ...series.labels }, value: series.count },
    { metricName: `${name}_sum`, labels: series.labels, value: series.sum },
    { metricName: `${name}_count`, labels: series.labels, value: series.count },
  )
  return samples
}
