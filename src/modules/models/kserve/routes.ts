import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ROLES } from '../../../shared/caller.js'
import { defineError } from '../../../shared/errors.js'
import { type ProblemSchema, problemResponses } from '../../../shared/schemas.js'
import { ModelNotFound, ModelVersionNotFound } from '../errors.js'
import { ModelParamsSchema, ModelVersionParamsSchema } from '../schemas.js'
import { retryAfterWhenQueueFull } from '../serving/retry-after.js'
import type { ModelServer } from '../serving/types.js'
import { decodeInferRequest, encodeInferResponse, modelMetadata } from './codec.js'
import {
  type InferRequest,
  InferRequestSchema,
  InferResponseSchema,
  ModelMetadataSchema,
  ServerMetadataSchema,
} from './schemas.js'

export interface KServeRoutesOptions {
  server: ModelServer
  /** This service's version, reported as the server's. */
  version: string
  /** What /v2/health/ready reports: the same verdict as /ready. */
  ready: () => Promise<boolean>
  /** Every registered version of a model; rejects with MODEL_NOT_FOUND or answers [] for none. */
  versionsOf: (name: string) => Promise<string[]>
}

const NotReady = defineError('NOT_READY', 503)
/**
 * A registered model (or version) that is not loaded in this process. 400, as Triton answers
 * it, which the protocol's clients are written against (the protocol itself says only "4xx"):
 * not 404, which would say the model does not exist, and not 503, which probes and load
 * balancers read as "this whole server is unwell" when one version is merely not loaded yet.
 */
const ModelNotReady = defineError('MODEL_NOT_READY', 400)

const tags = ['kserve']
const open = { auth: { public: true } } as const
// Inference reads; every role may, within the per-caller prediction budget.
const inference = { auth: { roles: ROLES }, rateLimitGroup: 'predict' } as const

const ModelReadySchema = Type.Object({ name: Type.String(), ready: Type.Literal(true) })

const ErrorMemberSchema = Type.String({
  description: 'The `detail`, where the protocol puts errors.',
})

/** Problem responses as the error handler renders them, plus the `error` member added below. */
function failures<const S extends readonly number[]>(...statuses: S) {
  const responses = problemResponses(...statuses)
  const withError: Record<string, typeof ProblemSchema> = {}
  for (const [status, schema] of Object.entries(
    responses as Record<string, typeof ProblemSchema>,
  )) {
    withError[status] = {
      ...schema,
      properties: { ...schema.properties, error: ErrorMemberSchema },
    } as typeof ProblemSchema
  }
  return withError as unknown as typeof responses
}

const isProblem = (contentType: unknown) =>
  typeof contentType === 'string' && contentType.startsWith('application/problem+json')

/**
 * The Open Inference Protocol (KServe v2) REST API over the models this process serves, so
 * KServe, Triton and MLServer clients work unchanged. Registered under `/v2`.
 */
export const kserveRoutes: FastifyPluginAsyncTypebox<KServeRoutesOptions> = async (
  app,
  { server, version: serverVersion, ready, versionsOf },
) => {
  app.addHook('onError', retryAfterWhenQueueFull)
  // The protocol's clients read failures from an `error` string; the problem keeps all else.
  app.addHook('onSend', async (_request, reply, payload) => {
    if (typeof payload !== 'string' || !isProblem(reply.getHeader('content-type'))) return payload
    const problem = JSON.parse(payload) as Record<string, unknown>
    if (typeof problem.detail !== 'string' || 'error' in problem) return payload
    return JSON.stringify({ ...problem, error: problem.detail })
  })

  /** The registered versions of a model, checking that it (and `version`) exist. */
  async function registeredVersions(name: string, version?: string): Promise<string[]> {
    const versions = await versionsOf(name)
    if (versions.length === 0) throw new ModelNotFound(`Model ${name} does not exist.`)
    if (version !== undefined && !versions.includes(version)) {
      throw new ModelVersionNotFound(`Model ${name} has no version ${version}.`)
    }
    return versions
  }

  async function metadata(name: string, version?: string) {
    const [served, versions] = await Promise.all([
      server.resolve(name, { version }),
      versionsOf(name),
    ])
    return modelMetadata(served, versions)
  }

  // Asks without loading: a readiness probe must not be what loads a pinned version.
  async function modelReady(name: string, version?: string) {
    await registeredVersions(name, version)
    if (!server.isReady(name, version)) {
      const which = version === undefined ? 'its active version' : `version ${version}`
      throw new ModelNotReady(`Model ${name} is not ready: ${which} is not loaded.`, {
        name,
        ready: false,
      })
    }
    return { name, ready: true as const }
  }

  // The feeds are built for the version that runs them, so an activation mid-request is safe.
  async function infer(name: string, version: string | undefined, body: InferRequest) {
    const { served, outputs } = await server.infer(
      name,
      (target) => decodeInferRequest(target.signature, body),
      { version },
    )
    return encodeInferResponse(served, outputs, {
      id: body.id,
      requested: body.outputs?.map((output) => output.name),
    })
  }

  app.get(
    '',
    {
      config: open,
      schema: {
        summary: 'Server metadata',
        description: 'The name and version of this server and the protocol extensions it has.',
        tags,
        response: { 200: ServerMetadataSchema },
      },
    },
    async () => ({ name: 'orderflow', version: serverVersion, extensions: [] }),
  )

  app.get(
    '/health/live',
    {
      config: open,
      schema: {
        summary: 'Server liveness',
        description: 'The process is up and answering.',
        tags,
        response: { 200: Type.Object({ live: Type.Literal(true) }) },
      },
    },
    async () => ({ live: true as const }),
  )

  app.get(
    '/health/ready',
    {
      config: open,
      schema: {
        summary: 'Server readiness',
        description:
          'Ready when the database answers, every active model is loaded and the server is ' +
          'not shutting down. Otherwise 503 with `ready: false`.',
        tags,
        response: {
          200: Type.Object({ ready: Type.Literal(true) }),
          ...failures(503),
        },
      },
    },
    async () => {
      if (!(await ready())) throw new NotReady('The server is not ready.', { ready: false })
      return { ready: true as const }
    },
  )

  app.get(
    '/models/:name',
    {
      schema: {
        summary: 'Model metadata',
        description:
          "The active version's inputs and outputs (dynamic dims as -1) and every version.",
        tags,
        params: ModelParamsSchema,
        response: { 200: ModelMetadataSchema, ...failures(404, 422, 503) },
      },
    },
    async (request) => metadata(request.params.name),
  )

  app.get(
    '/models/:name/versions/:version',
    {
      schema: {
        summary: 'Model version metadata',
        description: "A version's inputs and outputs; the version is loaded if it is not yet.",
        tags,
        params: ModelVersionParamsSchema,
        response: { 200: ModelMetadataSchema, ...failures(404, 422, 503) },
      },
    },
    async (request) => metadata(request.params.name, request.params.version),
  )

  app.get(
    '/models/:name/ready',
    {
      schema: {
        summary: 'Model readiness',
        description: 'Ready when its active version is loaded; 400 MODEL_NOT_READY when not.',
        tags,
        params: ModelParamsSchema,
        response: { 200: ModelReadySchema, ...failures(400, 404, 422, 503) },
      },
    },
    async (request) => modelReady(request.params.name),
  )

  app.get(
    '/models/:name/versions/:version/ready',
    {
      schema: {
        summary: 'Model version readiness',
        description:
          'Ready when the version is loaded; 400 MODEL_NOT_READY when not. Never loads it.',
        tags,
        params: ModelVersionParamsSchema,
        response: { 200: ModelReadySchema, ...failures(400, 404, 422, 503) },
      },
    },
    async (request) => modelReady(request.params.name, request.params.version),
  )

  app.post(
    '/models/:name/infer',
    {
      config: inference,
      schema: {
        summary: 'Inference',
        description:
          'Runs tensors through the active version. Every input of the model, with its ' +
          'datatype and shape (`GET /v2/models/{name}`); `data` flat or nested, row-major. ' +
          '422 lists every problem by path (`body.inputs[0].data[3]`).',
        tags,
        params: ModelParamsSchema,
        body: InferRequestSchema,
        response: {
          200: InferResponseSchema,
          ...failures(400, 404, 413, 415, 422, 503),
        },
      },
    },
    async (request) => infer(request.params.name, undefined, request.body),
  )

  app.post(
    '/models/:name/versions/:version/infer',
    {
      config: inference,
      schema: {
        summary: 'Inference on a version',
        description: 'As `/v2/models/{name}/infer`, on this version; it is loaded if not yet.',
        tags,
        params: ModelVersionParamsSchema,
        body: InferRequestSchema,
        response: {
          200: InferResponseSchema,
          ...failures(400, 404, 413, 415, 422, 503),
        },
      },
    },
    async (request) => infer(request.params.name, request.params.version, request.body),
  )
}
