import { AsyncLocalStorage } from 'node:async_hooks'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { ReadCacheResult } from './read-cache.js'

/** What one request spent, gathered while it runs. */
export interface RequestTimes {
  /** Milliseconds in database calls (overlapping calls add up). */
  db: number
  /** Milliseconds of model inference, waiting for a batch included. */
  inference: number
  cache: ReadCacheResult | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    serverTimes: RequestTimes | null
  }
}

/**
 * `Server-Timing` (the seeds' X-Process-Time, in the header browsers' dev tools show):
 * `db`, `inference` and `cache` when the request used them, and `total`, the time from the
 * request's arrival until its body is ready to send. Built only with SERVER_TIMING=true: when
 * it is off nothing is measured, no hook runs and no query is wrapped.
 */
export function createServerTiming() {
  const storage = new AsyncLocalStorage<RequestTimes>()

  const plugin = fp(
    async (app: FastifyInstance) => {
      app.decorateRequest('serverTimes', null)
      app.addHook('onRequest', (request, _reply, done) => {
        const times: RequestTimes = { db: 0, inference: 0, cache: undefined }
        request.serverTimes = times
        // Everything the request runs from here on, its queries included, sees `times`.
        storage.run(times, done)
      })
      app.addHook('onSend', (request, reply, payload, done) => {
        reply.header('server-timing', header(request.serverTimes, reply.elapsedTime))
        done(null, payload)
      })
    },
    { name: 'server-timing' },
  )

  return {
    plugin,
    /** The current request's times, or undefined outside a request (start-up, jobs). */
    current: () => storage.getStore(),
    addInference(ms: number) {
      const times = storage.getStore()
      if (times) times.inference += ms
    },
    noteCache(result: ReadCacheResult) {
      const times = storage.getStore()
      if (times) times.cache = result
    },
  }
}

export type ServerTiming = ReturnType<typeof createServerTiming>

function header(times: RequestTimes | null, totalMs: number): string {
  const parts: string[] = []
  if (times) {
    if (times.db > 0) parts.push(`db;dur=${times.db.toFixed(2)}`)
    if (times.inference > 0) parts.push(`inference;dur=${times.inference.toFixed(2)}`)
    if (times.cache) parts.push(`cache;desc=${times.cache}`)
  }
  parts.push(`total;dur=${totalMs.toFixed(2)}`)
  return parts.join(', ')
}
