import { type Static, Type } from 'typebox'
import { CUSTOMER_TIERS } from '../../db/schema/index.js'
import {
  IdSchema,
  PageQuerySchema,
  PageSchema,
  StringEnum,
  TimestampSchema,
} from '../../shared/schemas.js'

const NameSchema = Type.String({ minLength: 1, maxLength: 100, examples: ['Acme Corporation'] })
const EmailSchema = Type.String({
  format: 'email',
  maxLength: 254,
  description: 'Unique regardless of case; stored lower-cased.',
  examples: ['billing@acme.example'],
})
const TIER_DESCRIPTION = 'free, pro or enterprise.'
const TierSchema = StringEnum(CUSTOMER_TIERS, { description: TIER_DESCRIPTION, examples: ['pro'] })

export const CustomerSchema = Type.Object(
  {
    id: IdSchema,
    name: NameSchema,
    email: EmailSchema,
    tier: TierSchema,
    is_active: Type.Boolean(),
    created_at: TimestampSchema,
    updated_at: TimestampSchema,
  },
  {
    additionalProperties: false,
    examples: [
      {
        id: '3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10',
        name: 'Acme Corporation',
        email: 'billing@acme.example',
        tier: 'pro',
        is_active: true,
        created_at: '2026-01-31T12:00:00.000Z',
        updated_at: '2026-01-31T12:00:00.000Z',
      },
    ],
  },
)
export type Customer = Static<typeof CustomerSchema>

export const CustomerCreateSchema = Type.Object(
  {
    name: NameSchema,
    email: EmailSchema,
    tier: Type.Optional(
      StringEnum(CUSTOMER_TIERS, {
        default: 'free',
        description: TIER_DESCRIPTION,
        examples: ['pro'],
      }),
    ),
    is_active: Type.Optional(Type.Boolean({ default: true })),
  },
  {
    additionalProperties: false,
    examples: [{ name: 'Acme Corporation', email: 'Billing@Acme.example', tier: 'pro' }],
  },
)
export type CustomerCreate = Static<typeof CustomerCreateSchema>

export const CustomerUpdateSchema = Type.Object(
  {
    name: Type.Optional(NameSchema),
    email: Type.Optional(EmailSchema),
    tier: Type.Optional(TierSchema),
    is_active: Type.Optional(Type.Boolean()),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    examples: [{ tier: 'enterprise' }, { is_active: false }],
  },
)
export type CustomerUpdate = Static<typeof CustomerUpdateSchema>

export const CUSTOMER_SORTS = ['name', '-name', 'created_at', '-created_at'] as const

export const CustomerListQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    tier: Type.Optional(TierSchema),
    is_active: Type.Optional(
      Type.Boolean({ description: 'Only active (true) or inactive (false) customers.' }),
    ),
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        description: 'Case-insensitive search in name and email.',
        examples: ['acme'],
      }),
    ),
    sort: Type.Optional(
      StringEnum(CUSTOMER_SORTS, {
        default: 'created_at',
        description: 'Sort field; prefix "-" for descending. Ties are broken by id.',
      }),
    ),
  },
  { additionalProperties: false },
)
export type CustomerListQuery = Static<typeof CustomerListQuerySchema>

export const CustomerPageSchema = PageSchema(CustomerSchema)
