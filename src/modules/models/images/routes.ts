import multipart from '@fastify/multipart'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ROLES } from '../../../shared/caller.js'
import { defineError, ValidationFailed } from '../../../shared/errors.js'
import { asMalformedMultipart } from '../../../shared/multipart.js'
import { problemResponses } from '../../../shared/schemas.js'
import { PinnedVersionSchema } from '../card.js'
import { enterTraceContext } from '../remote/remote-model.js'
import { ModelParamsSchema } from '../schemas.js'
import { retryAfterWhenQueueFull } from '../serving/retry-after.js'
import { optionsOf } from '../serving/routes.js'
import { IMAGE_MEDIA_TYPES } from './decode.js'
import { ImageTooLarge } from './errors.js'
import type { ImagePredictionService } from './service.js'

export interface ImageRoutesOptions {
  images: ImagePredictionService
  /** The model behind `POST /v1/classify-image` (DEFAULT_IMAGE_MODEL). */
  defaultModel: string
  /** Largest picture accepted, in bytes (IMAGE_MAX_BYTES); a larger one answers 413. */
  maxBytes: number
  /** Pixels a picture may declare (IMAGE_MAX_PIXELS); documented here, enforced in decoding. */
  maxPixels: number
}

const tags = ['predictions']
// As for every prediction: every role may, within the per-caller prediction budget.
const config = { auth: { roles: ROLES }, rateLimitGroup: 'predict' as const }

const UnsupportedMediaType = defineError('UNSUPPORTED_MEDIA_TYPE', 415)
const notMultipart = (contentType: string | undefined) =>
  new UnsupportedMediaType(
    `${contentType ? `The media type ${contentType.split(';')[0]?.slice(0, 100)} is` : 'A body without a Content-Type is'} not accepted here: send the picture as the image part of a multipart/form-data body.`,
    { accepted: ['multipart/form-data'] },
  )

/** The parts a picture may come in: `image`, or `file` as the seed's client sends it. */
const IMAGE_PARTS = new Set(['image', 'file'])

const DEFAULT_TOP_K = 5

const ImageQuerySchema = Type.Object({
  top_k: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: DEFAULT_TOP_K,
    description: 'How many labels to answer, most probable first (at most the model has).',
  }),
})
const PinnedImageQuerySchema = Type.Object({
  ...ImageQuerySchema.properties,
  version: Type.Optional(PinnedVersionSchema),
})

const LabelProbabilitySchema = Type.Object({
  label: Type.String(),
  probability: Type.Number({ minimum: 0, maximum: 1 }),
})

export const ImagePredictionSchema = Type.Object({
  model: Type.String(),
  version: Type.String(),
  prediction: Type.String({ description: 'The most probable label.' }),
  probability: Type.Number({ description: 'Its probability.' }),
  top_k: Type.Array(LabelProbabilitySchema, {
    description: 'The top_k most probable labels, most probable first.',
  }),
  image: Type.Object(
    {
      format: Type.String({ description: 'jpeg, png or webp, as the content says.' }),
      width: Type.Integer(),
      height: Type.Integer(),
    },
    { description: 'The picture as uploaded, before resizing.' },
  ),
  latency_ms: Type.Number({ description: 'Time spent answering in this service.' }),
})

/**
 * The multipart body of the picture routes for the OpenAPI document: Fastify validates no
 * multipart body, so the route schemas cannot carry it (openapi-models.ts adds it).
 */
export const IMAGE_UPLOAD_PATHS = ['/v1/models/{name}/predict/image', '/v1/classify-image']
export const IMAGE_UPLOAD_BODY = {
  required: true,
  content: {
    'multipart/form-data': {
      schema: {
        type: 'object',
        required: ['image'],
        properties: {
          image: {
            type: 'string',
            format: 'binary',
            description:
              'The picture: a JPEG, PNG or WebP file (`file` is accepted as its name too).',
          },
        },
      },
      encoding: { image: { contentType: 'image/jpeg, image/png, image/webp' } },
    },
  },
}

/** The picture's bytes, from the first file part named image (or file); other parts are skipped. */
async function readPicture(request: FastifyRequest, maxBytes: number): Promise<Buffer> {
  let picture: Buffer | undefined
  try {
    for await (const part of request.parts()) {
      if (part.type !== 'file') continue
      if (picture !== undefined || !IMAGE_PARTS.has(part.fieldname)) {
        // Unread file streams would stall the request.
        part.file.resume()
        continue
      }
      picture = await part.toBuffer()
    }
  } catch (error) {
    if ((error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
      throw new ImageTooLarge(`The picture is larger than ${maxBytes} bytes.`, {
        max_bytes: maxBytes,
      })
    }
    throw asMalformedMultipart(error)
  }
  if (picture === undefined || picture.length === 0) {
    throw new ValidationFailed(
      [{ path: 'image', message: picture === undefined ? 'is required' : 'must not be empty' }],
      'The upload lacks a picture: send it as the image part.',
    )
  }
  return picture
}

export const imageRoutes: FastifyPluginAsyncTypebox<ImageRoutesOptions> = async (
  app,
  { images, defaultModel, maxBytes, maxPixels },
) => {
  // Multipart is read by these routes alone: every other prediction route stays JSON only.
  app.removeAllContentTypeParsers()
  await app.register(multipart, {
    limits: { fileSize: maxBytes, files: 2, fields: 4, parts: 6 },
  })
  app.addContentTypeParser('*', (request, _payload, done) =>
    done(notMultipart(request.headers['content-type']), undefined),
  )
  app.addHook('preValidation', async (request) => {
    if (!request.isMultipart()) throw notMultipart(request.headers['content-type'])
  })
  app.addHook('onError', retryAfterWhenQueueFull)
  app.addHook('onRequest', (request, _reply, done) => {
    enterTraceContext(request)
    done()
  })

  const accepted = Object.values(IMAGE_MEDIA_TYPES).join(', ')
  const body =
    `A \`multipart/form-data\` body whose \`image\` part is a JPEG, PNG or WebP file of at most ${maxBytes} bytes ` +
    `and ${maxPixels} pixels (${accepted}; recognised by its content, not its name or declared type: ` +
    'anything else, SVG included, answers 415). The picture is decoded, turned upright, resized and ' +
    "normalised as the model's card says (`card.image`), and predicted with every other prediction " +
    'of that model in one micro-batch. 413 IMAGE_TOO_LARGE for too many bytes, 413 ' +
    'IMAGE_TOO_MANY_PIXELS for a header that declares too many pixels (refused before decoding), ' +
    '422 IMAGE_UNREADABLE for a truncated or corrupt file, 409 MODEL_TASK_MISMATCH for a model ' +
    'that does not take pictures.'
  const responses = {
    200: ImagePredictionSchema,
    ...problemResponses(400, 404, 409, 413, 415, 422, 503),
  }

  app.post(
    '/models/:name/predict/image',
    {
      config,
      schema: {
        summary: 'Classify a picture with an image model',
        description: body,
        tags,
        consumes: ['multipart/form-data'],
        params: ModelParamsSchema,
        querystring: PinnedImageQuerySchema,
        response: responses,
      },
    },
    async (request) =>
      images.predict(request.params.name, await readPicture(request, maxBytes), {
        ...optionsOf(request),
        topK: request.query.top_k,
      }),
  )

  app.post(
    '/classify-image',
    {
      config,
      schema: {
        summary: 'Classify a picture with the default image model',
        description: `The shortcut to the active version of the default image model (DEFAULT_IMAGE_MODEL, \`${defaultModel}\` here). ${body}`,
        tags,
        consumes: ['multipart/form-data'],
        querystring: ImageQuerySchema,
        response: responses,
      },
    },
    async (request) =>
      images.predict(defaultModel, await readPicture(request, maxBytes), {
        ...optionsOf(request),
        topK: request.query.top_k,
      }),
  )
}
