import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { JOB_STATUSES } from '../../db/schema/index.js'

export interface JobMetrics {
  finished(type: string, outcome: string, seconds: number): void
}

/** Counts and times job runs where they execute (the worker, or the embedded runner). */
export function createJobMetrics(registry: Registry): JobMetrics {
  const total = new Counter({
    name: 'jobs_total',
    help: 'Job runs ended, by type and outcome (succeeded, failed, cancelled, retried).',
    labelNames: ['type', 'outcome'],
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'job_duration_seconds',
    help: 'Duration of one job run in seconds, by type.',
    labelNames: ['type'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
    registers: [registry],
  })
  return {
    finished(type, outcome, seconds) {
      total.inc({ type, outcome })
      duration.observe({ type }, seconds)
    },
  }
}

/**
 * Jobs by status, read from the jobs table (the truth in both modes) when scraped, plus
 * the queue's own counts in server mode. `queueCounts` answers null while this process has
 * not opened the queue: the gauge then has no samples (it never had any to keep).
 */
export function registerQueueDepth(
  registry: Registry,
  countByStatus: () => Promise<Record<string, number>>,
  queueCounts?: () => Promise<Record<string, number> | null>,
): void {
  new Gauge({
    name: 'jobs_by_status',
    help: 'Jobs in the jobs table by status.',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await countByStatus().catch(() => null)
      if (!counts) return
      for (const status of JOB_STATUSES) this.set({ status }, counts[status] ?? 0)
    },
  })
  if (!queueCounts) return
  new Gauge({
    name: 'job_queue_depth',
    help: 'Jobs in the BullMQ queue by state (waiting, active, delayed, failed, ...).',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = await queueCounts().catch(() => null)
      if (!counts) return
      for (const [state, value] of Object.entries(counts)) this.set({ state }, value)
    },
  })
}
