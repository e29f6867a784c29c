import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { sendTagged } from '../../platform/conditional-get.js'
import { idempotentCommit } from '../../platform/idempotency.js'
import { etagOf } from '../../platform/read-cache.js'
import { IdParamsSchema, problemResponses } from '../../shared/schemas.js'
import { actorOf } from '../audit/actor.js'
import {
  ProductCreateSchema,
  ProductListQuerySchema,
  ProductPageSchema,
  ProductSchema,
  ProductUpdateSchema,
} from './schemas.js'
import type { ProductService } from './service.js'

export interface ProductRoutesOptions {
  products: ProductService
}

const tags = ['products']
const locationOf = ({ id }: { id: string }) => `/v1/products/${id}`
// The catalogue is shared: every role reads it, only admins change it.
const admins = { auth: { roles: ['admin'] as const } }

export const productRoutes: FastifyPluginAsyncTypebox<ProductRoutesOptions> = async (
  app,
  { products },
) => {
  app.post(
    '',
    {
      config: { ...admins, idempotent: true },
      schema: {
        summary: 'Create a product',
        tags,
        body: ProductCreateSchema,
        response: {
          201: ProductSchema,
          ...problemResponses(400, 409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      const product = await products.create(
        request.body,
        actorOf(request),
        idempotentCommit(request, locationOf),
      )
      return reply.code(201).header('location', locationOf(product)).send(product)
    },
  )

  app.get(
    '',
    {
      schema: {
        summary: 'List products',
        description: 'Paginated; filter by activity and price range, search name and sku with `q`.',
        tags,
        querystring: ProductListQuerySchema,
        response: { 200: ProductPageSchema, ...problemResponses(422) },
      },
    },
    async (request) => products.list(request.query),
  )

  app.get(
    '/:id',
    {
      config: { etag: true },
      schema: {
        summary: 'Get a product',
        tags,
        params: IdParamsSchema,
        response: { 200: ProductSchema, ...problemResponses(404, 422) },
      },
    },
    async (request, reply) => sendTagged(request, reply, await products.get(request.params.id)),
  )

  app.patch(
    '/:id',
    {
      config: { ...admins, etag: true },
      schema: {
        summary: 'Update a product',
        description: 'Changes only the fields sent; at least one is required.',
        tags,
        params: IdParamsSchema,
        body: ProductUpdateSchema,
        response: { 200: ProductSchema, ...problemResponses(400, 404, 409, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const product = await products.update(request.params.id, request.body, actorOf(request))
      return reply.header('etag', etagOf(product)).send(product)
    },
  )

  app.delete(
    '/:id',
    {
      config: admins,
      schema: {
        summary: 'Delete a product',
        description:
          'A product that appears in orders cannot be deleted (409 PRODUCT_IN_USE): set ' +
          '`is_active` to false instead, so past orders keep their history.',
        tags,
        params: IdParamsSchema,
        response: {
          204: Type.Null({ description: 'Deleted.' }),
          ...problemResponses(404, 409, 422),
        },
      },
    },
    async (request, reply) => {
      await products.remove(request.params.id, actorOf(request))
      return reply.code(204).send(null)
    },
  )
}
