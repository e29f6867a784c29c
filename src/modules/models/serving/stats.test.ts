import { describe, expect, it } from 'vitest'
import { createModelStats } from './stats.js'

const START = Date.parse('2026-01-31T12:00:00.000Z')

function statsAt(windows = 3) {
  const clock = { now: START }
  const stats = createModelStats({ windowMs: 10_000, windows, now: () => clock.now })
  return { stats, clock }
}

describe('model stats windows', () => {
  it('when nothing was served, then every window of the span is listed empty, and the totals too', () => {
    const { stats } = statsAt()
    const report = stats.report('iris')
    expect(report.windows.map((window) => window.start)).toEqual([
      '2026-01-31T11:59:40.000Z',
      '2026-01-31T11:59:50.000Z',
      '2026-01-31T12:00:00.000Z',
    ])
    expect(report.totals).toEqual({
      requests: 0,
      rate_per_second: 0,
      latency_ms: null,
      batches: 0,
      batch_size: null,
    })
  })

  it('when requests are answered, then the percentiles are within 5 % above the true ones', () => {
    const { stats, clock } = statsAt()
    // 1..100 ms: the true p50, p95 and p99 are 50, 95 and 99.
    for (let ms = 1; ms <= 100; ms++) stats.answered('iris', ms)
    clock.now += 5_000
    const { totals, windows } = stats.report('iris')
    expect(totals.requests).toBe(100)
    for (const [name, truth] of [
      ['p50', 50],
      ['p95', 95],
      ['p99', 99],
    ] as const) {
      const value = totals.latency_ms?.[name] as number
      expect(value).toBeGreaterThanOrEqual(truth)
      expect(value).toBeLessThanOrEqual(truth * 1.05)
    }
    // The current window has run 5 s: 100 requests are 20 a second so far.
    expect(windows.at(-1)?.rate_per_second).toBe(20)
  })

  it('when batches run, then their count, mean and largest size are kept per window', () => {
    const { stats, clock } = statsAt()
    stats.batch('iris', 1)
    stats.batch('iris', 7)
    clock.now += 10_000
    stats.batch('iris', 4)
    const { windows, totals } = stats.report('iris')
    expect(windows.map((window) => window.batch_size)).toEqual([
      null,
      { mean: 4, max: 7 },
      { mean: 4, max: 4 },
    ])
    expect(totals).toMatchObject({ batches: 3, batch_size: { mean: 4, max: 7 } })
  })

  it('when windows age out of the span, then their figures leave the report', () => {
    const { stats, clock } = statsAt()
    stats.answered('iris', 3)
    clock.now += 20_000
    stats.answered('iris', 3)
    expect(stats.report('iris').totals.requests).toBe(2)
    clock.now += 10_000
    expect(stats.report('iris').totals.requests).toBe(1)
    stats.answered('iris', 3)
    expect(stats.report('iris').totals.requests).toBe(2)
  })

  it('when two models are served, then each report holds its own figures only', () => {
    const { stats } = statsAt()
    stats.answered('iris', 2)
    stats.answered('car-price', 2)
    stats.answered('car-price', 2)
    expect(stats.report('iris').totals.requests).toBe(1)
    expect(stats.report('car-price').totals.requests).toBe(2)
    expect(stats.report('other').totals.requests).toBe(0)
  })
})
