import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ROLES } from '../../../shared/caller.js'
import { ValidationFailed } from '../../../shared/errors.js'
import { problemResponses } from '../../../shared/schemas.js'
import { PinnedVersionSchema } from '../card.js'
import { enterTraceContext } from '../remote/remote-model.js'
import { ModelParamsSchema } from '../schemas.js'
import { streamBatchPredictions } from './batch-stream.js'
import type { BatchPrediction, PredictionService, PredictOptions } from './prediction-service.js'
import { retryAfterWhenQueueFull } from './retry-after.js'

/** The version a request pins, and who asked, for the prediction log. */
export function optionsOf(request: FastifyRequest): PredictOptions {
  const { version } = (request.query ?? {}) as { version?: string }
  return { version, context: { requestId: request.id, caller: request.caller } }
}

function wantsNdjson(accept: string | undefined): boolean {
  return accept?.includes(NDJSON) === true
}

export interface PredictionRoutesOptions {
  predictions: PredictionService
  batchMax: number
  /** Instances in one batch answered as NDJSON (`Accept: application/x-ndjson`). */
  streamBatchMax: number
  /** Instances per inference call of a streamed batch. */
  streamChunkRows: number
}

const NDJSON = 'application/x-ndjson'

const tags = ['predictions']
// Predicting reads; every role may. Predictions have their own per-caller budget.
const config = { auth: { roles: ROLES }, rateLimitGroup: 'predict' as const }

const VersionQuerySchema = Type.Object({ version: Type.Optional(PinnedVersionSchema) })

const InputsSchema = Type.Record(Type.String(), Type.Unknown(), {
  description:
    "The model's inputs by name, as its card declares them (`GET /v1/models/{name}`); each model's own schema is in this document under its own predict operation.",
})

const PredictionFields = {
  prediction: Type.Union([Type.Number(), Type.String()], {
    description: 'The class label (classifiers) or the predicted value (regressors).',
  }),
  probabilities: Type.Optional(
    Type.Record(Type.String(), Type.Number(), {
      description: 'Classifiers: label -> probability.',
    }),
  ),
}

export const PredictionSchema = Type.Object({
  model: Type.String(),
  version: Type.String(),
  ...PredictionFields,
  latency_ms: Type.Number({ description: 'Time spent answering in this service.' }),
  cached: Type.Boolean({ description: 'Answered from the prediction cache.' }),
})

const BatchPredictionSchema = Type.Object({
  model: Type.String(),
  version: Type.String(),
  predictions: Type.Array(Type.Union([Type.Object(PredictionFields), Type.Null()]), {
    description: 'One entry per instance, in order; null where the instance was refused.',
  }),
  errors: Type.Array(Type.Object({ path: Type.String(), message: Type.String() }), {
    description:
      'Every problem of every refused instance, by path: `body.instances[<index>].<input>`.',
  }),
  latency_ms: Type.Number(),
})

/**
 * The batch answer is written by JSON.stringify rather than by the serializer compiled from
 * its schema: the schema's unions (an entry or null, a label or a value) and its label ->
 * probability record make fast-json-stringify test every entry against each branch, about
 * 37 µs for a 32-row iris answer against 16 µs (micro-benchmark). The prediction service
 * builds the answer field by field, in the schema's order, so there is nothing undocumented
 * for a schema to strip; predict.test.ts checks the answer against the schema.
 */
const serializeBatch = (answer: BatchPrediction) => JSON.stringify(answer)

const StreamedLineSchema = Type.Union(
  [
    Type.Object({
      index: Type.Integer(),
      model: Type.String(),
      version: Type.String(),
      ...PredictionFields,
    }),
    Type.Object({
      index: Type.Integer(),
      errors: Type.Array(Type.Object({ path: Type.String(), message: Type.String() })),
    }),
    Type.Object({
      index: Type.Integer(),
      problem: Type.Record(Type.String(), Type.Unknown(), {
        description: 'Why the stream stopped at this instance (e.g. PREDICTION_QUEUE_FULL).',
      }),
    }),
  ],
  {
    description:
      'One line per instance, in order: its prediction, or its problems; a line with `problem` ends the stream early.',
  },
)

const IrisPredictionSchema = Type.Object({
  class: Type.Integer({ description: 'Index of the predicted class.' }),
  label: Type.String(),
  probabilities: Type.Record(Type.String(), Type.Number()),
  model: Type.String(),
  version: Type.String(),
  cached: Type.Boolean(),
})

// 400 malformed JSON, 413 too large, 415 not JSON, 503 not loadable or queue full.
// 409: the model generates text (its operations are /generate and /v1/chat/completions).
const failures = problemResponses(400, 404, 409, 413, 415, 422, 503)

export const predictionRoutes: FastifyPluginAsyncTypebox<PredictionRoutesOptions> = async (
  app,
  { predictions, batchMax, streamBatchMax, streamChunkRows },
) => {
  app.addHook('onError', retryAfterWhenQueueFull)
  // A remote backend's call carries the trace context of the request that led to it.
  app.addHook('onRequest', (request, _reply, done) => {
    enterTraceContext(request)
    done()
  })

  app.post(
    '/models/:name/predict',
    {
      config,
      schema: {
        summary: 'Predict with a model',
        description:
          "Validates the inputs against the serving version's card (every problem is listed by path), " +
          'then answers from the cache or from one micro-batched inference call.',
        tags,
        params: ModelParamsSchema,
        querystring: VersionQuerySchema,
        body: Type.Object({ inputs: InputsSchema }),
        response: { 200: PredictionSchema, ...failures },
      },
    },
    async (request) =>
      predictions.predict(request.params.name, request.body.inputs, optionsOf(request)),
  )

  app.post(
    '/models/:name/predict/batch',
    {
      config,
      schema: {
        summary: 'Predict many instances at once',
        description:
          `Up to ${batchMax} instances, run as one inference call. Invalid instances are reported ` +
          'by index in `errors` (their `predictions` entry is null) while the valid ones are ' +
          'predicted; a batch with no valid instance is refused with 422. With ' +
          `\`Accept: ${NDJSON}\`, up to ${streamBatchMax} instances are answered as one JSON ` +
          'line each, in order, streamed as they are predicted.',
        tags,
        params: ModelParamsSchema,
        querystring: VersionQuerySchema,
        body: Type.Object({
          instances: Type.Array(InputsSchema, {
            minItems: 1,
            maxItems: Math.max(batchMax, streamBatchMax),
          }),
        }),
        produces: ['application/json', NDJSON],
        response: {
          200: {
            content: {
              'application/json': { schema: BatchPredictionSchema },
              [NDJSON]: { schema: StreamedLineSchema },
            },
          },
          ...failures,
        },
      },
    },
    async (request, reply) => {
      const { instances } = request.body
      if (!wantsNdjson(request.headers.accept)) {
        const answer = await predictions.predictBatch(
          request.params.name,
          instances,
          optionsOf(request),
        )
        // A serializer of the route's own leaves the content type to the route.
        return reply.type('application/json; charset=utf-8').serializer(serializeBatch).send(answer)
      }
      if (instances.length > streamBatchMax) {
        throw new ValidationFailed(
          [{ path: 'body.instances', message: `must hold at most ${streamBatchMax} instances` }],
          `A streamed batch may hold at most ${streamBatchMax} instances; split it.`,
        )
      }
      // Resolved before the status line leaves, so an unknown model is still a 404.
      const served = await predictions.resolve(request.params.name, request.query)
      const lines = streamBatchPredictions(predictions, served.name, instances, {
        ...optionsOf(request),
        version: served.version,
        chunkRows: streamChunkRows,
      })
      // A stream is sent as it comes; the response schema documents its lines.
      return reply.type(NDJSON).send(Readable.from(lines, { objectMode: false }) as never)
    },
  )

  app.post(
    '/predict',
    {
      config,
      schema: {
        summary: 'Classify an iris flower',
        description:
          'The seed-compatible shortcut: four measurements in cm (sepal length, sepal width, ' +
          'petal length, petal width), answered by the active version of the `iris` model.',
        tags,
        body: Type.Object({
          features: Type.Array(Type.Number(), {
            minItems: 4,
            maxItems: 4,
            examples: [[5.1, 3.5, 1.4, 0.2]],
          }),
        }),
        response: { 200: IrisPredictionSchema, ...failures },
      },
    },
    async (request) => predictions.predictIris(request.body.features, optionsOf(request)),
  )
}
