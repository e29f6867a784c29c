import { type Static, Type } from 'typebox'
import { StringEnum, TimestampSchema } from '../../shared/schemas.js'
import { ModelCardSchema, ModelNameSchema, VersionNameSchema } from './card.js'

/**
 * Path parameters of every model route (/v1 and /v2): checked against the card's patterns
 * before any lookup, so no caller-chosen text reaches the database or the model server.
 */
export const ModelParamsSchema = Type.Object({ name: ModelNameSchema })
export const ModelVersionParamsSchema = Type.Object({
  name: ModelNameSchema,
  version: VersionNameSchema,
})

const MetricsSchema = Type.Record(Type.String(), Type.Number())
const TaskSchema = StringEnum(['classification', 'regression', 'text-generation'] as const)

/** One stored version, without its bytes. */
export const ModelVersionSchema = Type.Object({
  version: Type.String(),
  active: Type.Boolean(),
  onnx_sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  size_bytes: Type.Integer({ minimum: 1 }),
  metrics: MetricsSchema,
  created_at: TimestampSchema,
  created_by: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]),
})

/** A model in a list: its active version's metrics, and how many versions it has. */
export const ModelSummarySchema = Type.Object({
  name: Type.String(),
  task: TaskSchema,
  active_version: Type.Union([Type.String(), Type.Null()]),
  version_count: Type.Integer({ minimum: 0 }),
  metrics: Type.Union([MetricsSchema, Type.Null()]),
  created_at: TimestampSchema,
  updated_at: TimestampSchema,
})

/** One model: the active version's card, and every version, newest first. */
export const ModelSchema = Type.Object({
  name: Type.String(),
  task: TaskSchema,
  active_version: Type.Union([Type.String(), Type.Null()]),
  card: Type.Union([ModelCardSchema, Type.Null()]),
  metrics: Type.Union([MetricsSchema, Type.Null()]),
  versions: Type.Array(ModelVersionSchema),
  created_at: TimestampSchema,
  updated_at: TimestampSchema,
})

export type ModelVersion = Static<typeof ModelVersionSchema>
export type ModelSummary = Static<typeof ModelSummarySchema>
export type Model = Static<typeof ModelSchema>
