import { type Static, Type } from 'typebox'
import { JOB_STATUSES } from '../../db/schema/index.js'
import {
  IdSchema,
  PageQuerySchema,
  PageSchema,
  StringEnum,
  TimestampSchema,
} from '../../shared/schemas.js'
import { ModelNameSchema, PinnedVersionSchema } from '../models/card.js'
import { JOB_TYPES } from './contract.js'

export const JobStatusSchema = StringEnum(JOB_STATUSES)

const JobErrorSchema = Type.Object(
  { code: Type.String(), message: Type.String() },
  { additionalProperties: false },
)

export const JobSchema = Type.Object(
  {
    id: IdSchema,
    type: Type.String({ examples: ['batch_predict'] }),
    status: JobStatusSchema,
    progress: Type.Number({ minimum: 0, maximum: 1 }),
    progress_message: Type.Union([Type.String(), Type.Null()]),
    params: Type.Unknown(),
    result: Type.Unknown({ description: 'The handler’s result once succeeded, else null.' }),
    error: Type.Union([JobErrorSchema, Type.Null()], {
      description: 'The last failure (also while a retry waits).',
    }),
    attempts: Type.Integer({ minimum: 0 }),
    max_attempts: Type.Integer({ minimum: 1 }),
    owner_id: Type.Union([IdSchema, Type.Null()]),
    request_id: Type.Union([Type.String(), Type.Null()]),
    cancel_requested: Type.Boolean(),
    created_at: TimestampSchema,
    started_at: Type.Union([TimestampSchema, Type.Null()]),
    finished_at: Type.Union([TimestampSchema, Type.Null()]),
    updated_at: TimestampSchema,
  },
  { additionalProperties: false },
)
export type Job = Static<typeof JobSchema>

const BatchPredictParamsSchema = Type.Object(
  {
    model: ModelNameSchema,
    version: Type.Optional(PinnedVersionSchema),
    dataset_id: IdSchema,
    mapping: Type.Record(Type.String({ minLength: 1 }), Type.String({ minLength: 1 }), {
      description: 'Model input name -> dataset column name.',
    }),
  },
  { additionalProperties: false },
)

const DatasetExportParamsSchema = Type.Object(
  {
    dataset_id: IdSchema,
    format: StringEnum(['csv', 'ndjson', 'parquet'] as const),
  },
  { additionalProperties: false },
)

/** The job types a user may start, each with its own params. */
export const JobCreateSchema = Type.Union(
  [
    Type.Object(
      { type: Type.Literal('batch_predict'), params: BatchPredictParamsSchema },
      { additionalProperties: false },
    ),
    Type.Object(
      { type: Type.Literal('dataset_export'), params: DatasetExportParamsSchema },
      { additionalProperties: false },
    ),
  ],
  { description: 'A job a user may start: `batch_predict` or `dataset_export`.' },
)
export type JobCreate = Static<typeof JobCreateSchema>

export const JobListQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    status: Type.Optional(JobStatusSchema),
    type: Type.Optional(StringEnum(JOB_TYPES)),
  },
  { additionalProperties: false },
)
export type JobListQuery = Static<typeof JobListQuerySchema>

export const JobPageSchema = PageSchema(JobSchema)
export type JobPage = Static<typeof JobPageSchema>

export const JobEventsHeadersSchema = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({ pattern: '^[0-9]{1,9}$', description: 'The last event id received.' }),
  ),
})
