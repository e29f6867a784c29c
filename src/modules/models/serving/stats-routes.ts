import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ROLES } from '../../../shared/caller.js'
import { problemResponses, TimestampSchema } from '../../../shared/schemas.js'
import type { ModelRegistry } from '../registry.js'
import { ModelParamsSchema } from '../schemas.js'
import type { ModelStats } from './stats.js'

const WindowFiguresSchema = {
  requests: Type.Integer({
    minimum: 0,
    description:
      'Requests answered: single and batch predictions, pictures, over HTTP, WebSocket and batch jobs.',
  }),
  rate_per_second: Type.Number({
    minimum: 0,
    description: 'Requests per second over the time covered (the current window: so far).',
  }),
  latency_ms: Type.Union(
    [
      Type.Object(
        { p50: Type.Number(), p95: Type.Number(), p99: Type.Number() },
        { additionalProperties: false },
      ),
      Type.Null(),
    ],
    {
      description:
        "Percentiles of the answers' `latency_ms` (queueing and inference, not the network), " +
        'within 5 % (read from log-spaced buckets); null without a request.',
    },
  ),
  batches: Type.Integer({ minimum: 0, description: 'Inference calls (micro-batches) run.' }),
  batch_size: Type.Union(
    [
      Type.Object(
        { mean: Type.Number({ minimum: 0 }), max: Type.Integer({ minimum: 0 }) },
        { additionalProperties: false },
      ),
      Type.Null(),
    ],
    { description: 'Rows per inference call; null without a call.' },
  ),
}

export const ModelStatsSchema = Type.Object(
  {
    model: Type.String(),
    window_seconds: Type.Integer({ minimum: 1 }),
    from: TimestampSchema,
    to: TimestampSchema,
    windows: Type.Array(
      Type.Object(
        { start: TimestampSchema, ...WindowFiguresSchema },
        { additionalProperties: false },
      ),
      { description: 'Every window of the span, oldest first; the last is still filling.' },
    ),
    totals: Type.Object(WindowFiguresSchema, {
      additionalProperties: false,
      description: 'The whole span at once.',
    }),
  },
  { additionalProperties: false },
)

export const modelStatsRoutes: FastifyPluginAsyncTypebox<{
  stats: Pick<ModelStats, 'report'>
  registry: Pick<ModelRegistry, 'get'>
}> = async (app, { stats, registry }) => {
  app.get(
    '/:name/stats',
    {
      config: { auth: { roles: ROLES } },
      schema: {
        summary: 'Recent serving figures of a model',
        description:
          'Request rate, latency percentiles (p50, p95, p99) and batch sizes of the last five ' +
          'minutes, in ten-second windows, as this instance served them: behind a load ' +
          "balancer each instance answers its own share (sum them from `/metrics` for the fleet's). " +
          'Counted in memory: a restart starts from zero. Text generation is not counted.',
        tags: ['models'],
        params: ModelParamsSchema,
        response: { 200: ModelStatsSchema, ...problemResponses(404, 422) },
      },
    },
    async (request) => {
      // An unknown name answers 404 MODEL_NOT_FOUND, as every model route does.
      await registry.get(request.params.name)
      return stats.report(request.params.name)
    },
  )
}
