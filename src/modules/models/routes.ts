import multipart from '@fastify/multipart'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { defineError, ValidationFailed } from '../../shared/errors.js'
import { problemResponses } from '../../shared/schemas.js'
import { actorOf } from '../audit/actor.js'
import type { ModelRegistry } from './registry.js'
import {
  ModelParamsSchema,
  ModelSchema,
  ModelSummarySchema,
  ModelVersionParamsSchema,
} from './schemas.js'

export interface ModelRoutesOptions {
  registry: ModelRegistry
  /** Largest ONNX file accepted; a larger one answers 413. */
  maxModelBytes: number
}

const tags = ['models']
// Every role sees what is served; only admins change it.
const admins = { auth: { roles: ['admin'] as const } }

const UnsupportedMediaType = defineError('UNSUPPORTED_MEDIA_TYPE', 415)

const notMultipart = (contentType: string | undefined) =>
  new UnsupportedMediaType(
    `${contentType ? `The media type ${contentType.split(';')[0]?.slice(0, 100)} is` : 'A body without a Content-Type is'} not accepted here: a model upload has a card part and an onnx part; send multipart/form-data.`,
    { accepted: ['multipart/form-data'] },
  )

/** Reads the `card` (JSON text or file) and `onnx` (file) parts; every missing one is named. */
async function readUpload(request: FastifyRequest): Promise<{ card: unknown; onnx: Uint8Array }> {
  const found: { card?: string; onnx?: Uint8Array } = {}
  for await (const part of request.parts()) {
    if (part.fieldname === 'card') {
      found.card = part.type === 'field' ? String(part.value) : (await part.toBuffer()).toString()
    } else if (part.fieldname === 'onnx' && part.type === 'file') {
      found.onnx = new Uint8Array(await part.toBuffer())
    } else if (part.type === 'file') {
      // Unread file streams would stall the request.
      part.file.resume()
    }
  }
  let card: unknown
  let cardProblem: string | undefined
  if (found.card === undefined) cardProblem = 'is required'
  else {
    try {
      card = JSON.parse(found.card)
    } catch {
      cardProblem = 'must be JSON'
    }
  }
  // A card that names a remote backend has no graph to upload; the registry checks the rest.
  const remote = typeof card === 'object' && card !== null && 'backend' in card
  const problems = [
    ...(cardProblem ? [{ path: 'card', message: cardProblem }] : []),
    ...(found.onnx === undefined && !remote ? [{ path: 'onnx', message: 'is required' }] : []),
  ]
  if (problems.length > 0) {
    const missing = problems.filter((problem) => problem.message === 'is required')
    throw new ValidationFailed(
      problems,
      missing.length > 0
        ? `The upload lacks: ${missing.map((p) => p.path).join(', ')}.`
        : undefined,
    )
  }
  return { card, onnx: found.onnx ?? new Uint8Array(0) }
}

export const modelRoutes: FastifyPluginAsyncTypebox<ModelRoutesOptions> = async (
  app,
  { registry, maxModelBytes },
) => {
  // Multipart is read by the upload route alone: every other route stays JSON only.
  await app.register(async (upload) => {
    upload.removeAllContentTypeParsers()
    await upload.register(multipart, {
      limits: { fileSize: maxModelBytes, files: 2, fields: 2, parts: 4 },
    })
    // Any other body, or none at all, is the wrong media type: 415 saying which one is right
    // (the multipart plugin would answer a request without a body 406).
    upload.addContentTypeParser('*', (request, _payload, done) =>
      done(notMultipart(request.headers['content-type']), undefined),
    )
    upload.addHook('preValidation', async (request) => {
      if (!request.isMultipart()) throw notMultipart(request.headers['content-type'])
    })
    upload.post(
      '',
      {
        config: admins,
        schema: {
          summary: 'Register a model version',
          description:
            'A `multipart/form-data` body with a `card` part (the model card as JSON text or a ' +
            'file) and an `onnx` part (the graph; none for a card that names a remote `backend`). The graph must load and match its card. A ' +
            "model's first version becomes active; later versions wait for an activation.",
          tags,
          consumes: ['multipart/form-data'],
          response: { 201: ModelSchema, ...problemResponses(409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const { card, onnx } = await readUpload(request)
        const model = await registry.register({ card, onnx, actor: actorOf(request) })
        return reply
          .code(201)
          .header('location', `/v1/models/${encodeURIComponent(model.name)}`)
          .send(model)
      },
    )
  })

  app.get(
    '',
    {
      schema: {
        summary: 'List models',
        description: 'Every registered model by name, with its active version and its metrics.',
        tags,
        response: { 200: Type.Array(ModelSummarySchema) },
      },
    },
    async () => registry.list(),
  )

  app.get(
    '/:name',
    {
      schema: {
        summary: 'Get a model',
        description: "The active version's card and metrics, and every version, newest first.",
        tags,
        params: ModelParamsSchema,
        response: { 200: ModelSchema, ...problemResponses(404, 422) },
      },
    },
    async (request) => registry.get(request.params.name),
  )

  app.post(
    '/:name/versions/:version/activate',
    {
      config: admins,
      schema: {
        summary: 'Activate a model version',
        description: 'Predictions are served by this version from now on.',
        tags,
        params: ModelVersionParamsSchema,
        response: { 200: ModelSchema, ...problemResponses(404, 422) },
      },
    },
    async (request) =>
      registry.activate(request.params.name, request.params.version, actorOf(request)),
  )

  app.delete(
    '/:name/versions/:version',
    {
      config: admins,
      schema: {
        summary: 'Delete a model version',
        description:
          'The active version cannot be deleted (409 MODEL_VERSION_ACTIVE): activate another first.',
        tags,
        params: ModelVersionParamsSchema,
        response: {
          204: Type.Null({ description: 'Deleted.' }),
          ...problemResponses(404, 409, 422),
        },
      },
    },
    async (request, reply) => {
      await registry.remove(request.params.name, request.params.version, actorOf(request))
      return reply.code(204).send(null)
    },
  )
}
