import { type Static, Type } from 'typebox'
import {
  IdSchema,
  MoneySchema,
  PageQuerySchema,
  PageSchema,
  StringEnum,
  TimestampSchema,
} from '../../shared/schemas.js'

const SkuSchema = Type.String({
  minLength: 3,
  maxLength: 64,
  pattern: '^[A-Z0-9-]+$',
  description: '3-64 characters of A-Z, 0-9 and "-"',
  examples: ['KB-MECH-001'],
})
const NameSchema = Type.String({ minLength: 1, maxLength: 200, examples: ['Mechanical keyboard'] })
const DescriptionSchema = Type.String({
  maxLength: 2000,
  examples: ['Tenkeyless, brown switches.'],
})
const StockSchema = Type.Integer({ minimum: 0, maximum: 2_147_483_647, examples: [25] })

export const ProductSchema = Type.Object(
  {
    id: IdSchema,
    sku: SkuSchema,
    name: NameSchema,
    description: Type.Union([DescriptionSchema, Type.Null()]),
    price: MoneySchema,
    stock: StockSchema,
    is_active: Type.Boolean(),
    created_at: TimestampSchema,
    updated_at: TimestampSchema,
  },
  { additionalProperties: false },
)
export type Product = Static<typeof ProductSchema>

export const ProductCreateSchema = Type.Object(
  {
    sku: SkuSchema,
    name: NameSchema,
    description: Type.Optional(DescriptionSchema),
    price: MoneySchema,
    stock: Type.Optional(StockSchema),
    is_active: Type.Optional(Type.Boolean({ default: true })),
  },
  {
    additionalProperties: false,
    examples: [{ sku: 'KB-MECH-001', name: 'Mechanical keyboard', price: '89.90', stock: 25 }],
  },
)
export type ProductCreate = Static<typeof ProductCreateSchema>

export const ProductUpdateSchema = Type.Object(
  {
    sku: Type.Optional(SkuSchema),
    name: Type.Optional(NameSchema),
    description: Type.Optional(Type.Union([DescriptionSchema, Type.Null()])),
    price: Type.Optional(MoneySchema),
    stock: Type.Optional(StockSchema),
    is_active: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1, examples: [{ price: '79.90', stock: 40 }] },
)
export type ProductUpdate = Static<typeof ProductUpdateSchema>

export const PRODUCT_SORTS = [
  'name',
  '-name',
  'price',
  '-price',
  'created_at',
  '-created_at',
] as const

export const ProductListQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    is_active: Type.Optional(
      Type.Boolean({ description: 'Only active (true) or inactive (false) products.' }),
    ),
    min_price: Type.Optional(MoneySchema),
    max_price: Type.Optional(MoneySchema),
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        description: 'Case-insensitive search in name and sku.',
      }),
    ),
    sort: Type.Optional(
      StringEnum(PRODUCT_SORTS, {
        default: 'created_at',
        description: 'Sort field; prefix "-" for descending.',
      }),
    ),
  },
  { additionalProperties: false },
)
export type ProductListQuery = Static<typeof ProductListQuerySchema>

export const ProductPageSchema = PageSchema(ProductSchema)
