import { type Static, Type } from 'typebox'
import { ORDER_STATUSES } from '../../db/schema/index.js'
import {
  IdSchema,
  MoneySchema,
  PageQuerySchema,
  PageSchema,
  StringEnum,
  TimestampSchema,
} from '../../shared/schemas.js'

export const OrderStatusSchema = StringEnum(ORDER_STATUSES, {
  description:
    'pending -> processing | cancelled; processing -> shipped | cancelled; ' +
    'shipped -> delivered.',
})

/** Totals are NUMERIC(14,2): up to 12 digits before the point, always 2 after. */
const AmountSchema = Type.String({
  pattern: '^(0|[1-9][0-9]{0,11})\\.[0-9]{2}$',
  description: 'a decimal string with 2 decimals, computed by the server',
  examples: ['179.80'],
})
const NotesSchema = Type.String({
  maxLength: 500,
  description: 'Free text, at most 500 characters.',
  examples: ['Leave at the back door.'],
})
const QuantitySchema = Type.Integer({ minimum: 1, examples: [2] })

export const OrderItemSchema = Type.Object(
  {
    id: IdSchema,
    product_id: IdSchema,
    product_name: Type.String({ description: 'The product name when the order was placed.' }),
    sku: Type.String({ description: 'The product sku when the order was placed.' }),
    quantity: QuantitySchema,
    unit_price: { ...MoneySchema, description: 'The product price when the order was placed.' },
    line_total: AmountSchema,
  },
  { additionalProperties: false },
)
export type OrderItem = Static<typeof OrderItemSchema>

export const OrderSchema = Type.Object(
  {
    id: IdSchema,
    customer_id: IdSchema,
    customer_name: Type.String(),
    status: OrderStatusSchema,
    items: Type.Array(OrderItemSchema, { description: 'In the order they were sent.' }),
    total: AmountSchema,
    notes: Type.Union([NotesSchema, Type.Null()]),
    created_by: { ...IdSchema, description: 'The user who placed the order: its owner.' },
    created_at: TimestampSchema,
    updated_at: TimestampSchema,
  },
  { additionalProperties: false },
)
export type Order = Static<typeof OrderSchema>

export const OrderItemCreateSchema = Type.Object(
  { product_id: IdSchema, quantity: QuantitySchema },
  { additionalProperties: false },
)

export const OrderCreateSchema = Type.Object(
  {
    customer_id: IdSchema,
    items: Type.Array(OrderItemCreateSchema, {
      minItems: 1,
      description: 'One line per product; a product may appear only once.',
    }),
    notes: Type.Optional(Type.Union([NotesSchema, Type.Null()])),
  },
  {
    additionalProperties: false,
    examples: [
      {
        customer_id: '3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10',
        items: [{ product_id: '9a0e4c1d-2b3f-4a5e-8c7d-6e5f4a3b2c1d', quantity: 2 }],
        notes: 'Leave at the back door.',
      },
    ],
  },
)
export type OrderCreate = Static<typeof OrderCreateSchema>

export const OrderUpdateSchema = Type.Object(
  { notes: Type.Union([NotesSchema, Type.Null()], { description: 'null clears the notes.' }) },
  { additionalProperties: false, examples: [{ notes: 'Call before delivery.' }] },
)
export type OrderUpdate = Static<typeof OrderUpdateSchema>

export const OrderStatusChangeSchema = Type.Object(
  { status: OrderStatusSchema },
  { additionalProperties: false, examples: [{ status: 'processing' }] },
)
export type OrderStatusChange = Static<typeof OrderStatusChangeSchema>

export const ORDER_SORTS = [
  'created_at',
  '-created_at',
  'total',
  '-total',
  'status',
  '-status',
] as const

export const OrderListQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    status: Type.Optional(OrderStatusSchema),
    customer_id: Type.Optional(IdSchema),
    created_from: Type.Optional({
      ...TimestampSchema,
      description: 'Orders created at or after this time.',
    }),
    created_to: Type.Optional({
      ...TimestampSchema,
      description: 'Orders created at or before this time; not before created_from.',
    }),
    min_total: Type.Optional({ ...MoneySchema, description: 'Orders totalling at least this.' }),
    max_total: Type.Optional({
      ...MoneySchema,
      description: 'Orders totalling at most this; not below min_total.',
    }),
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        description: 'Case-insensitive search in the notes and the customer name.',
      }),
    ),
    sort: Type.Optional(
      StringEnum(ORDER_SORTS, {
        default: '-created_at',
        description:
          'Sort field; prefix "-" for descending. Newest first by default; status sorts in ' +
          'lifecycle order (pending, processing, shipped, delivered, cancelled).',
      }),
    ),
  },
  { additionalProperties: false },
)
export type OrderListQuery = Static<typeof OrderListQuerySchema>

const BasePageSchema = PageSchema(OrderSchema)

/** A page whose total past ORDER_COUNT_EXACT_MAX orders is the planner's estimate. */
export const OrderPageSchema = Type.Object(
  {
    ...BasePageSchema.properties,
    total_is_estimate: Type.Boolean({
      description:
        'true when more orders match than the server counts exactly (ORDER_COUNT_EXACT_MAX, ' +
        'default 1000): `total` and `total_pages` are then an estimate from the database ' +
        'statistics, never below the orders paged through so far.',
    }),
  },
  { additionalProperties: false },
)
export type OrderPage = Static<typeof OrderPageSchema>
