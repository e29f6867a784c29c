import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import FindMyWay, { type HTTPMethod } from 'find-my-way'
import { sendProblem } from './problem.js'

/**
 * Answers unknown routes with 404 and known paths called with the wrong method with 405
 * and an `Allow` header (RFC 9110 §15.5.6), which Fastify alone reports as 404.
 * A shadow router learns every route as it is added and is asked only on a miss.
 */
export const notFound = fp(
  async (app: FastifyInstance) => {
    const shadow = FindMyWay()
    const methods = new Set<string>()

    app.addHook('onRoute', (route) => {
      for (const method of ([] as string[]).concat(route.method)) {
        // CORS answers OPTIONS on every path; it says nothing about which resources exist.
        if (method === 'OPTIONS') continue
        methods.add(method)
        shadow.on(method as HTTPMethod, route.url, () => {})
      }
    })

    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0] ?? '/'
      const allowed = [...methods].filter((method) => shadow.find(method as HTTPMethod, path))
      if (allowed.length > 0) {
        reply.header('allow', allowed.sort().join(', '))
        return sendProblem(request, reply, {
          status: 405,
          code: 'METHOD_NOT_ALLOWED',
          detail: `${request.method} is not allowed here; allowed: ${allowed.join(', ')}.`,
        })
      }
      return sendProblem(request, reply, {
        status: 404,
        code: 'ROUTE_NOT_FOUND',
        detail: `No route ${request.method} ${path}.`,
      })
    })
  },
  { name: 'not-found' },
)
