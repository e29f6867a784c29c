import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import type { PoolStats } from '../db/client.js'
import { RequestMetrics } from './request-metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's Prometheus registry; modules add their own metrics to it. */
    metrics: Registry
  }
}

export interface MetricsOptions {
  poolStats: () => PoolStats
  /** The app's registry, when modules created their series before this plugin ran. */
  registry?: Registry
}

/**
 * Prometheus metrics at /metrics. Each app owns its registry (no global default
 * registry), so several apps in one process, as in tests, never share counters.
 */
export const metrics = fp(
  async (app: FastifyInstance, options: MetricsOptions) => {
    const registry = options.registry ?? new Registry()
    collectDefaultMetrics({ register: registry })

    const requests = new RequestMetrics(registry)
    new Gauge({
      name: 'db_pool_connections',
      help: 'Database pool connections by state (total, idle, waiting clients).',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const stats = options.poolStats()
        this.set({ state: 'total' }, stats.total)
        this.set({ state: 'idle' }, stats.idle)
        this.set({ state: 'waiting' }, stats.waiting)
      },
    })

    app.decorate('metrics', registry)

    app.addHook('onResponse', (request, reply, done) => {
      // Unmatched URLs share one label so random paths cannot explode the series count.
      const route = request.routeOptions.url ?? 'unmatched'
      requests.record(request.method, route, reply.statusCode, reply.elapsedTime / 1000)
      done()
    })

    app.get(
      '/metrics',
      {
        schema: {
          summary: 'Prometheus metrics',
          tags: ['operations'],
          produces: ['text/plain'],
          response: { 200: { type: 'string', description: 'Prometheus text exposition format.' } },
        },
      },
      async (_request, reply) => {
        reply.type(registry.contentType)
        return registry.metrics()
      },
    )
  },
  { name: 'metrics' },
)
