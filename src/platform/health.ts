import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import { Type } from 'typebox'
import { ProblemSchema } from '../shared/schemas.js'
import { sendProblem } from './problem.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Flips /ready to 503 so load balancers drain this instance before it closes. */
    beginShutdown(): void
    isShuttingDown(): boolean
  }
}

/** A named dependency check; it throws (or times out) when the dependency is unusable. */
export type ReadinessCheck = () => Promise<void>

export interface HealthOptions {
  /** Fixed checks, or a function naming the checks of the moment (e.g. one per failed model). */
  checks: Record<string, ReadinessCheck> | (() => Record<string, ReadinessCheck>)
  checkTimeoutMs?: number
}

const CheckStatus = Type.Union([Type.Literal('ok'), Type.Literal('failing')])

const ReadySchema = Type.Object({
  status: Type.Literal('ready'),
  checks: Type.Record(Type.String(), CheckStatus),
})

export const health = fp(
  async (app: FastifyInstance, options: HealthOptions) => {
    let shuttingDown = false
    app.decorate('beginShutdown', () => {
      shuttingDown = true
    })
    app.decorate('isShuttingDown', () => shuttingDown)
    // While draining, every answer closes its connection, so that no client is left holding
    // an idle keep-alive socket to send its next request on just as the server closes it (a
    // reset the client cannot tell from a lost request); its next request opens a new one.
    app.addHook('onRequest', (_request, reply, done) => {
      if (shuttingDown) reply.header('connection', 'close')
      done()
    })
    const timeoutMs = options.checkTimeoutMs ?? 2000

    async function evaluate(): Promise<Record<string, 'ok' | 'failing'>> {
      const entries = Object.entries(
        typeof options.checks === 'function' ? options.checks() : options.checks,
      )
      const outcomes = await Promise.allSettled(
        entries.map(([, check]) => withTimeout(check(), timeoutMs)),
      )
      const checks: Record<string, 'ok' | 'failing'> = {}
      entries.forEach(([name], i) => {
        checks[name] = outcomes[i]?.status === 'fulfilled' ? 'ok' : 'failing'
      })
      if (shuttingDown) checks.shutdown = 'failing'
      return checks
    }

    if (app.hasDecorator('metrics')) {
      // Readiness as a series, so an alert sees an instance that is up but cannot serve
      // (nothing else asks /ready outside Kubernetes). Evaluated per scrape, not per request.
      new Gauge({
        name: 'readiness_check',
        help: 'Readiness checks as /ready would answer them now: 1 ok, 0 failing.',
        labelNames: ['check'],
        registers: [app.metrics],
        async collect() {
          this.reset()
          for (const [name, status] of Object.entries(await evaluate())) {
            this.set({ check: name }, status === 'ok' ? 1 : 0)
          }
        },
      })
    }

    app.get(
      '/health',
      {
        schema: {
          summary: 'Liveness: the process is up and serving',
          tags: ['operations'],
          response: { 200: Type.Object({ status: Type.Literal('ok') }) },
        },
      },
      async () => ({ status: 'ok' as const }),
    )

    app.get(
      '/ready',
      {
        schema: {
          summary: 'Readiness: every dependency answers and the process is not shutting down',
          tags: ['operations'],
          response: {
            200: ReadySchema,
            503: { ...ProblemSchema, description: 'Not ready; `checks` names the failing ones.' },
          },
        },
      },
      async (request, reply) => {
        const checks = await evaluate()
        const failing = Object.keys(checks).filter((name) => checks[name] === 'failing')
        if (failing.length > 0) {
          return sendProblem(request, reply, {
            status: 503,
            code: 'NOT_READY',
            detail: `Not ready: ${failing.join(', ')}.`,
            extensions: { checks },
          })
        }
        return { status: 'ready' as const, checks }
      },
    )
  },
  { name: 'health' },
)

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
