import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { idempotentCommit } from '../../platform/idempotency.js'
import { IdParamsSchema, problemResponses } from '../../shared/schemas.js'
import { actorOf } from '../audit/actor.js'
import {
  CustomerCreateSchema,
  CustomerListQuerySchema,
  CustomerPageSchema,
  CustomerSchema,
  CustomerUpdateSchema,
} from './schemas.js'
import type { CustomerService } from './service.js'

export interface CustomerRoutesOptions {
  customers: CustomerService
}

const tags = ['customers']
const locationOf = ({ id }: { id: string }) => `/v1/customers/${id}`
// Customers are shared business records: every role reads them (the default for reads),
// users and admins change them. Said explicitly so a change of the default cannot widen it.
const writers = { auth: { roles: ['admin', 'user'] as const } }

export const customerRoutes: FastifyPluginAsyncTypebox<CustomerRoutesOptions> = async (
  app,
  { customers },
) => {
  app.post(
    '',
    {
      config: { ...writers, idempotent: true },
      schema: {
        summary: 'Create a customer',
        description: 'The email is stored lower-cased and must be unique regardless of case.',
        tags,
        body: CustomerCreateSchema,
        response: {
          201: CustomerSchema,
          ...problemResponses(400, 409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const customer = await customers.create(
        request.body,
        actorOf(request),
        idempotentCommit(request, locationOf),
      )
      return reply.code(201).header('location', locationOf(customer)).send(customer)
    },
  )

  app.get(
    '',
    {
      schema: {
        summary: 'List customers',
        description: 'Paginated; filter by tier and activity, search name and email with `q`.',
        tags,
        querystring: CustomerListQuerySchema,
        response: { 200: CustomerPageSchema, ...problemResponses(422) },
      },
    },
    async (request) => customers.list(request.query),
  )

  app.get(
    '/:id',
    {
      schema: {
        summary: 'Get a customer',
        tags,
        params: IdParamsSchema,
        response: { 200: CustomerSchema, ...problemResponses(404, 422) },
      },
    },
    async (request) => customers.get(request.params.id),
  )

  app.patch(
    '/:id',
    {
      config: writers,
      schema: {
        summary: 'Update a customer',
        description: 'Changes only the fields sent; at least one is required.',
        tags,
        params: IdParamsSchema,
        body: CustomerUpdateSchema,
        response: { 200: CustomerSchema, ...problemResponses(400, 404, 409, 413, 415, 422) },
      },
    },
    async (request) => customers.update(request.params.id, request.body, actorOf(request)),
  )

  app.delete(
    '/:id',
    {
      config: writers,
      schema: {
        summary: 'Delete a customer',
        description:
          'A customer with orders cannot be deleted (409 CUSTOMER_HAS_ORDERS): set ' +
          '`is_active` to false instead, so the orders keep their customer.',
        tags,
        params: IdParamsSchema,
        response: {
          204: Type.Null({ description: 'Deleted.' }),
          ...problemResponses(404, 409, 422),
        },
      },
    },
    async (request, reply) => {
      await customers.remove(request.params.id, actorOf(request))
      return reply.code(204).send(null)
    },
  )
}
