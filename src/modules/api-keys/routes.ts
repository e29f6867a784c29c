import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../platform/auth.js'
import { ROLES } from '../../shared/caller.js'
import { IdParamsSchema, problemResponses } from '../../shared/schemas.js'
import { actorOf } from '../audit/actor.js'
import { ApiKeyCreatedSchema, ApiKeyCreateSchema, ApiKeyListSchema } from './schemas.js'
import type { ApiKeyService } from './service.js'

const tags = ['api-keys']
// Every role manages its own keys: a key never grants more than its owner's role.
const everyone = { auth: { roles: ROLES } }

export const apiKeyRoutes: FastifyPluginAsyncTypebox<{ apiKeys: ApiKeyService }> = async (
  app,
  { apiKeys },
) => {
  app.post(
    '',
    {
      config: everyone,
      schema: {
        summary: 'Create an API key',
        description:
          'The answer holds the key itself, once; send it as the `X-API-Key` header. Needs a ' +
          'bearer token: a request made with an API key answers 403.',
        tags,
        body: ApiKeyCreateSchema,
        response: { 201: ApiKeyCreatedSchema, ...problemResponses(400, 403, 415, 422) },
      },
    },
    async (request, reply) => {
      const created = await apiKeys.create(callerOf(request), request.body, actorOf(request))
      return reply.code(201).header('location', `/v1/api-keys/${created.id}`).send(created)
    },
  )

  app.get(
    '',
    {
      schema: {
        summary: 'List my API keys',
        tags,
        response: { 200: ApiKeyListSchema },
      },
    },
    async (request) => ({ items: await apiKeys.list(callerOf(request)) }),
  )

  app.delete(
    '/:id',
    {
      config: everyone,
      schema: {
        summary: 'Revoke one of my API keys',
        tags,
        params: IdParamsSchema,
        response: { 204: Type.Null({ description: 'Revoked.' }), ...problemResponses(404, 422) },
      },
    },
    async (request, reply) => {
      await apiKeys.revoke(callerOf(request), request.params.id, actorOf(request))
      return reply.code(204).send(null)
    },
  )
}
