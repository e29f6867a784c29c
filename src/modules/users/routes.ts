import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { callerOf } from '../../platform/auth.js'
import { ROLES } from '../../shared/caller.js'
import { IdParamsSchema, problemResponses } from '../../shared/schemas.js'
import { actorOf } from '../audit/actor.js'
import {
  UserAdminUpdateSchema,
  UserCreateSchema,
  UserListQuerySchema,
  UserPageSchema,
  UserSchema,
  UserSelfUpdateSchema,
} from './schemas.js'
import type { UserService } from './service.js'

const tags = ['users']
const admins = { auth: { roles: ['admin'] as const } }
const everyone = { auth: { roles: ROLES } }

export const userRoutes: FastifyPluginAsyncTypebox<{ users: UserService }> = async (
  app,
  { users },
) => {
  app.get(
    '/me',
    {
      schema: { summary: 'Get my profile', tags, response: { 200: UserSchema } },
    },
    async (request) => users.get(callerOf(request).userId),
  )

  app.patch(
    '/me',
    {
      config: everyone,
      schema: {
        summary: 'Update my profile or password',
        description:
          'Changes the full name and/or the password. A new password needs `current_password`, and ' +
          'signs out everywhere: refresh tokens, API keys and issued access tokens stop working.',
        tags,
        body: UserSelfUpdateSchema,
        response: { 200: UserSchema, ...problemResponses(400, 415, 422) },
      },
    },
    async (request) => users.updateSelf(callerOf(request), request.body, actorOf(request)),
  )

  app.get(
    '',
    {
      config: admins,
      schema: {
        summary: 'List users (admin)',
        tags,
        querystring: UserListQuerySchema,
        response: { 200: UserPageSchema, ...problemResponses(422) },
      },
    },
    async (request) => users.list(request.query),
  )

  app.post(
    '',
    {
      config: admins,
      schema: {
        summary: 'Create a user (admin)',
        tags,
        body: UserCreateSchema,
        response: { 201: UserSchema, ...problemResponses(400, 409, 415, 422) },
      },
    },
    async (request, reply) => {
      const user = await users.create(request.body, actorOf(request))
      return reply.code(201).header('location', `/v1/users/${user.id}`).send(user)
    },
  )

  app.get(
    '/:id',
    {
      config: admins,
      schema: {
        summary: 'Get a user (admin)',
        tags,
        params: IdParamsSchema,
        response: { 200: UserSchema, ...problemResponses(404, 422) },
      },
    },
    async (request) => users.get(request.params.id),
  )

  app.patch(
    '/:id',
    {
      config: admins,
      schema: {
        summary: 'Change a user’s name, role or activity (admin)',
        description:
          'Deactivating a user revokes all of their refresh tokens, API keys and access tokens.',
        tags,
        params: IdParamsSchema,
        body: UserAdminUpdateSchema,
        response: { 200: UserSchema, ...problemResponses(400, 404, 409, 415, 422) },
      },
    },
    async (request) =>
      users.update(callerOf(request), request.params.id, request.body, actorOf(request)),
  )

  app.delete(
    '/:id',
    {
      config: admins,
      schema: {
        summary: 'Delete a user (admin)',
        tags,
        params: IdParamsSchema,
        response: {
          204: Type.Null({ description: 'Deleted.' }),
          ...problemResponses(404, 409, 422),
        },
      },
    },
    async (request, reply) => {
      await users.remove(callerOf(request), request.params.id, actorOf(request))
      return reply.code(204).send(null)
    },
  )
}
