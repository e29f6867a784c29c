import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../platform/auth.js'
import { sendTagged } from '../../platform/conditional-get.js'
import { idempotentCommit } from '../../platform/idempotency.js'
import { etagOf } from '../../platform/read-cache.js'
import { IdParamsSchema, problemResponses } from '../../shared/schemas.js'
import { actorOf } from '../audit/actor.js'
import {
  OrderCreateSchema,
  OrderListQuerySchema,
  OrderPageSchema,
  OrderSchema,
  OrderStatusChangeSchema,
  OrderUpdateSchema,
} from './schemas.js'
import type { OrderService } from './service.js'

export interface OrderRoutesOptions {
  orders: OrderService
}

const tags = ['orders']
const locationOf = ({ id }: { id: string }) => `/v1/orders/${id}`
// Reads are open to every role and writes to users and admins (the auth default); the
// service limits a user to their own orders. Deleting erases history, so it is admin-only.
const admins = { auth: { roles: ['admin'] as const } }
const ownership =
  'A user sees and changes only the orders they created (another user’s order answers 404); ' +
  'viewers read every order; admins do everything.'

export const orderRoutes: FastifyPluginAsyncTypebox<OrderRoutesOptions> = async (
  app,
  { orders },
) => {
  app.post(
    '',
    {
      // Retries with the same Idempotency-Key never place a second order.
      config: { idempotent: true },
      schema: {
        summary: 'Place an order',
        description:
          'Takes the units from stock and copies each product’s price, name and sku at this ' +
          'moment; line totals and the total are computed by the server. The customer and ' +
          'every product must exist and be active, a product may appear on one line only, ' +
          'and the order may hold at most ORDER_MAX_TOTAL_QUANTITY units (20 by default): ' +
          'otherwise 422 naming the field. 409 OUT_OF_STOCK names every line whose product ' +
          'lacks the units, and nothing is taken. Send an `Idempotency-Key` to retry safely.',
        tags,
        body: OrderCreateSchema,
        response: {
          201: OrderSchema,
          ...problemResponses(400, 409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const order = await orders.create(
        callerOf(request),
        request.body,
        actorOf(request),
        idempotentCommit(request, locationOf),
      )
      return reply.code(201).header('location', locationOf(order)).send(order)
    },
  )

  app.get(
    '',
    {
      schema: {
        summary: 'List orders',
        description:
          'Paginated, each order with its items and customer name. Filter by status, ' +
          'customer, creation time and total (bounds inclusive); search notes and customer ' +
          `name with \`q\`. ${ownership}`,
        tags,
        querystring: OrderListQuerySchema,
        response: { 200: OrderPageSchema, ...problemResponses(422) },
      },
    },
    async (request) => orders.list(callerOf(request), request.query),
  )

  app.get(
    '/:id',
    {
      config: { etag: true },
      schema: {
        summary: 'Get an order',
        description: ownership,
        tags,
        params: IdParamsSchema,
        response: { 200: OrderSchema, ...problemResponses(404, 422) },
      },
    },
    async (request, reply) =>
      sendTagged(request, reply, await orders.get(callerOf(request), request.params.id)),
  )

  app.patch(
    '/:id',
    {
      config: { etag: true },
      schema: {
        summary: 'Change an order’s notes',
        description:
          'Only the notes can change here (null clears them); the status changes through ' +
          '`POST /v1/orders/{id}/status`, and items and customer are fixed once placed.',
        tags,
        params: IdParamsSchema,
        body: OrderUpdateSchema,
        response: { 200: OrderSchema, ...problemResponses(400, 404, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const order = await orders.update(
        callerOf(request),
        request.params.id,
        request.body,
        actorOf(request),
      )
      return reply.header('etag', etagOf(order)).send(order)
    },
  )

  app.post(
    '/:id/status',
    {
      schema: {
        summary: 'Move an order to its next status',
        description:
          'pending -> processing or cancelled; processing -> shipped or cancelled; shipped -> ' +
          'delivered. Any other move answers 409 INVALID_STATUS_TRANSITION with ' +
          '`allowed_next`. Cancelling puts the units back in stock. Concurrent transitions ' +
          'of one order apply one at a time, so only one of two racing moves can win.',
        tags,
        params: IdParamsSchema,
        body: OrderStatusChangeSchema,
        response: { 200: OrderSchema, ...problemResponses(400, 404, 409, 413, 415, 422) },
      },
    },
    async (request) =>
      orders.changeStatus(callerOf(request), request.params.id, request.body, actorOf(request)),
  )

  app.delete(
    '/:id',
    {
      config: admins,
      schema: {
        summary: 'Delete an order (admin)',
        description:
          'Removes the order and its items. A pending or processing order still holds its ' +
          'units, so they go back to stock, as when it is cancelled; a shipped or delivered ' +
          'order’s goods have left and a cancelled one has already returned them, so stock ' +
          'is left alone. Prefer cancelling: it keeps the history.',
        tags,
        params: IdParamsSchema,
        response: {
          204: Type.Null({ description: 'Deleted.' }),
          ...problemResponses(404, 422),
        },
      },
    },
    async (request, reply) => {
      await orders.remove(callerOf(request), request.params.id, actorOf(request))
      return reply.code(204).send(null)
    },
  )
}
