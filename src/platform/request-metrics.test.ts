import { Counter, Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { REQUEST_DURATION_BUCKETS, RequestMetrics } from './request-metrics.js'

const OBSERVATIONS: [method: string, route: string, status: number, seconds: number][] = [
  ['GET', '/health', 200, 0.0004],
  ['GET', '/health', 200, 0.001],
  ['GET', '/v1/orders/:id', 200, 0.012],
  ['GET', '/v1/orders/:id', 404, 0.003],
  ['POST', '/v1/orders', 201, 0.3],
  ['GET', '/health', 200, 42],
  ['GET', 'unmatched', 404, 0.0001],
]

/** The exposition prom-client's own Counter and Histogram write for the same requests. */
async function promClientText(): Promise<string> {
  const registry = new Registry()
  const labelNames = ['method', 'route', 'status_code'] as const
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by method, route template and status.',
    labelNames,
    registers: [registry],
  })
  const durations = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency in seconds, by method, route template and status.',
    labelNames,
    buckets: [...REQUEST_DURATION_BUCKETS],
    registers: [registry],
  })
  for (const [method, route, status, seconds] of OBSERVATIONS) {
    const labels = { method, route, status_code: String(status) }
    requests.inc(labels)
    durations.observe(labels, seconds)
  }
  return registry.metrics()
}

describe('request metrics', () => {
  it('when requests are recorded, then /metrics reads exactly as prom-client would write them', async () => {
    const registry = new Registry()
    const metrics = new RequestMetrics(registry)
    for (const [method, route, status, seconds] of OBSERVATIONS) {
      metrics.record(method, route, status, seconds)
    }

    expect(await registry.metrics()).toBe(await promClientText())
  })

  it('when the registry is reset, then every series starts again from zero', async () => {
    const registry = new Registry()
    const metrics = new RequestMetrics(registry)
    metrics.record('GET', '/health', 200, 0.002)
    registry.resetMetrics()
    metrics.record('GET', '/health', 200, 0.002)

    const text = await registry.metrics()
    expect(text).toContain('http_requests_total{method="GET",route="/health",status_code="200"} 1')
    expect(text).toContain(
      'http_request_duration_seconds_count{method="GET",route="/health",status_code="200"} 1',
    )
  })

  it('when the registry has default labels, then these series carry them too', async () => {
    const registry = new Registry()
    registry.setDefaultLabels({ instance: 'a' })
    const metrics = new RequestMetrics(registry)
    metrics.record('GET', '/health', 200, 0.002)

    expect(await registry.metrics()).toContain(
      'http_requests_total{method="GET",route="/health",status_code="200",instance="a"} 1',
    )
  })
})
