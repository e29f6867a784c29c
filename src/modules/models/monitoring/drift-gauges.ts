import type { FastifyBaseLogger } from 'fastify'
import { Gauge, type Registry } from 'prom-client'
import type { DriftReport } from './service.js'

export interface DriftGaugeDeps {
  registry: Registry
  /** The models to watch: those active here whose card has a reference distribution. */
  models: () => string[]
  drift: (name: string, range: { from: string }) => Promise<DriftReport>
  intervalMs: number
  windowMs: number
  log: FastifyBaseLogger
  now?: () => number
}

/**
 * Drift as Prometheus gauges, computed on a timer over a trailing window rather than on
 * scrape: a report reads thousands of logged rows, which a scrape every few seconds from
 * several Prometheus servers should not repeat.
 */
export function createDriftGauges({
  registry,
  models,
  drift,
  intervalMs,
  windowMs,
  log,
  now = Date.now,
}: DriftGaugeDeps) {
  const psi = new Gauge({
    name: 'model_feature_psi',
    help: 'Population stability index of an input over the trailing DRIFT_WINDOW_MS, against the card reference.',
    labelNames: ['model', 'feature'] as const,
    registers: [registry],
  })
  const drifted = new Gauge({
    name: 'model_feature_drifted',
    help: '1 when the input PSI is above DRIFT_PSI_THRESHOLD, else 0.',
    labelNames: ['model', 'feature'] as const,
    registers: [registry],
  })

  async function refresh(): Promise<void> {
    const from = new Date(now() - windowMs).toISOString()
    const figures: { labels: { model: string; feature: string }; psi: number; drifted: boolean }[] =
      []
    for (const name of models()) {
      try {
        const report = await drift(name, { from })
        for (const feature of report.features) {
          if (feature.psi === null) continue
          const labels = { model: name, feature: feature.name }
          figures.push({ labels, psi: feature.psi, drifted: feature.drifted })
        }
      } catch (error) {
        log.warn({ err: error, model: name }, 'drift gauges not refreshed')
      }
    }
    // Swapped in one synchronous step once every report is in: a scrape during a refresh,
    // which reads thousands of rows per model, sees the last figures rather than none.
    psi.reset()
    drifted.reset()
    for (const figure of figures) {
      psi.set(figure.labels, figure.psi)
      drifted.set(figure.labels, figure.drifted ? 1 : 0)
    }
  }

  let running: Promise<void> | undefined
  const timer =
    intervalMs > 0
      ? setInterval(() => {
          running ??= refresh().finally(() => {
            running = undefined
          })
        }, intervalMs)
      : undefined
  timer?.unref()

  return {
    refresh,
    async close() {
      if (timer) clearInterval(timer)
      await running
    },
  }
}
