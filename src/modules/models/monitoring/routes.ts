import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  IdSchema,
  PageQuerySchema,
  PageSchema,
  problemResponses,
  StringEnum,
  TimestampSchema,
} from '../../../shared/schemas.js'
import { ModelParamsSchema } from '../schemas.js'
import type { MonitoringService } from './service.js'

const tags = ['models']
const admin = { auth: { roles: ['admin'] as const } }

const RangeQuery = {
  from: Type.Optional(
    Type.String({ format: 'date-time', description: 'Start of the window (inclusive), ISO-8601.' }),
  ),
  to: Type.Optional(
    Type.String({
      format: 'date-time',
      description: 'End of the window (exclusive); now by default.',
    }),
  ),
}

const NullableId = Type.Union([IdSchema, Type.Null()])

export const PredictionLogEntrySchema = Type.Object(
  {
    id: IdSchema,
    model: Type.String(),
    version: Type.String(),
    inputs: Type.Record(Type.String(), Type.Unknown(), { description: 'The inputs as sent.' }),
    output: Type.Record(Type.String(), Type.Unknown(), {
      description: 'The answer: `prediction`, and `probabilities` for classifiers.',
    }),
    latency_ms: Type.Number(),
    request_id: Type.Union([Type.String(), Type.Null()]),
    caller: Type.Object({ user_id: NullableId, api_key_id: NullableId }),
    created_at: TimestampSchema,
  },
  { additionalProperties: false },
)

const FeatureDriftSchema = Type.Object(
  {
    name: Type.String(),
    kind: StringEnum(['numeric', 'categorical'] as const),
    count: Type.Integer({ minimum: 0, description: 'Logged values of this input in the window.' }),
    psi: Type.Union([Type.Number(), Type.Null()], {
      description: 'Population stability index; null when the window holds no value.',
    }),
    drifted: Type.Boolean({ description: 'psi is above the threshold.' }),
  },
  { additionalProperties: false },
)

export const DriftReportSchema = Type.Object(
  {
    model: Type.String(),
    version: Type.String({ description: 'The active version, whose card holds the reference.' }),
    from: Type.Union([TimestampSchema, Type.Null()]),
    to: TimestampSchema,
    rows: Type.Integer({ minimum: 0, description: 'Logged predictions the report read.' }),
    threshold: Type.Number(),
    drifted: Type.Boolean({ description: 'Some input is flagged.' }),
    features: Type.Array(FeatureDriftSchema, {
      description: "One entry per input of the card's reference distribution; empty without one.",
    }),
  },
  { additionalProperties: false },
)

export const monitoringRoutes: FastifyPluginAsyncTypebox<{
  monitoring: MonitoringService
}> = async (app, { monitoring }) => {
  app.get(
    '/:name/predictions',
    {
      config: admin,
      schema: {
        summary: 'List logged predictions (admin)',
        description:
          'Predictions of a model as the prediction log recorded them (sampled by ' +
          'PREDICTION_LOG_SAMPLE_RATE), newest first, within an optional time range. Rows are ' +
          'written in batches, about a second after their answer.',
        tags,
        params: ModelParamsSchema,
        querystring: Type.Object({ ...PageQuerySchema.properties, ...RangeQuery }),
        response: { 200: PageSchema(PredictionLogEntrySchema), ...problemResponses(404, 422) },
      },
    },
    async (request) => monitoring.list(request.params.name, request.query),
  )

  app.get(
    '/:name/drift',
    {
      config: admin,
      schema: {
        summary: 'Input drift against the training data (admin)',
        description:
          "Per input of the active card's reference distribution, the population stability " +
          'index between the training data and the inputs logged in the window (numeric inputs ' +
          'by the reference bins, categories by their frequencies), flagged above ' +
          'DRIFT_PSI_THRESHOLD.',
        tags,
        params: ModelParamsSchema,
        querystring: Type.Object(RangeQuery),
        response: { 200: DriftReportSchema, ...problemResponses(404, 422) },
      },
    },
    async (request) => monitoring.drift(request.params.name, request.query),
  )
}
