import { type Static, Type } from 'typebox'
import { IdSchema, TimestampSchema } from '../../shared/schemas.js'

export const ApiKeySchema = Type.Object(
  {
    id: IdSchema,
    name: Type.String({ examples: ['nightly export'] }),
    prefix: Type.String({
      description: 'The public start of the key, to recognise it.',
      examples: ['ofk_3f1c9b8e'],
    }),
    created_at: TimestampSchema,
    last_used_at: Type.Union([TimestampSchema, Type.Null()]),
    expires_at: Type.Union([TimestampSchema, Type.Null()]),
  },
  { additionalProperties: false },
)
export type ApiKey = Static<typeof ApiKeySchema>

export const ApiKeyCreatedSchema = Type.Object(
  {
    ...ApiKeySchema.properties,
    key: Type.String({
      description: 'The secret key. Shown once: only its hash is stored.',
      examples: ['ofk_3f1c9b8e_Xq2...'],
    }),
  },
  { additionalProperties: false },
)
export type ApiKeyCreated = Static<typeof ApiKeyCreatedSchema>

export const ApiKeyCreateSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    expires_at: Type.Optional(
      Type.String({ format: 'date-time', description: 'Optional expiry, in the future.' }),
    ),
  },
  {
    additionalProperties: false,
    examples: [{ name: 'nightly export', expires_at: '2027-01-01T00:00:00Z' }],
  },
)
export type ApiKeyCreate = Static<typeof ApiKeyCreateSchema>

export const ApiKeyListSchema = Type.Object(
  { items: Type.Array(ApiKeySchema) },
  { additionalProperties: false },
)
