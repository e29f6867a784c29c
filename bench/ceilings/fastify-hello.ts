/**
 * The ceiling of GET /health: Fastify with nothing registered but the route, answering the
 * same body through the same response schema. What the service adds on top (security
 * headers, compression, request ids, logging, metrics, rate limits) is the difference.
 */
import Fastify from 'fastify'

const app = Fastify({ logger: false })

app.get(
  '/health',
  {
    schema: {
      response: {
        200: {
          type: 'object',
          properties: { status: { type: 'string', const: 'ok' } },
          required: ['status'],
        },
      },
    },
  },
  async () => ({ status: 'ok' }),
)

process.once('SIGTERM', () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  )
})

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT) })
