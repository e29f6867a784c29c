import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * `Server-Timing: total;dur=<ms>` on every response (the seeds' X-Process-Time, in the
 * header browsers' dev tools show): the time from the request's arrival until its body
 * is ready to send. Registered only with SERVER_TIMING=true, so it costs nothing when off.
 */
export const serverTiming = fp(
  async (app: FastifyInstance) => {
    app.addHook('onSend', (_request, reply, payload, done) => {
      reply.header('server-timing', `total;dur=${reply.elapsedTime.toFixed(2)}`)
      done(null, payload)
    })
  },
  { name: 'server-timing' },
)
