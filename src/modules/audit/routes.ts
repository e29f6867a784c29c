import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { problemResponses } from '../../shared/schemas.js'
import { AuditEventPageSchema, AuditListQuerySchema } from './schemas.js'
import type { AuditService } from './service.js'

export const auditRoutes: FastifyPluginAsyncTypebox<{ audit: AuditService }> = async (
  app,
  { audit },
) => {
  app.get(
    '',
    {
      config: { auth: { roles: ['admin'] } },
      schema: {
        summary: 'List audit events (admin)',
        description:
          'Every create, update, delete and status change of customers, products, orders, ' +
          'users and API keys, newest first. Events are written in the same transaction as ' +
          'the change and are never modified.',
        tags: ['audit'],
        querystring: AuditListQuerySchema,
        response: { 200: AuditEventPageSchema, ...problemResponses(422) },
      },
    },
    async (request) => audit.list(request.query),
  )
}
