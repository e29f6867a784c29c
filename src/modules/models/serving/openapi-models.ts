import type { ModelCard } from '../card.js'
import { IMAGE_UPLOAD_BODY, IMAGE_UPLOAD_PATHS } from '../images/routes.js'
import { inputsJsonSchema } from './features.js'
import type { ServedVersion } from './types.js'

type Json = Record<string, unknown>
interface OpenApiDocument {
  paths?: Record<string, Record<string, Json>>
  components?: { schemas?: Record<string, unknown> }
}

const GENERIC = { single: '/v1/models/{name}/predict', batch: '/v1/models/{name}/predict/batch' }

/** A plausible value of every required input, for the example request of the docs. */
export function exampleInputs(card: ModelCard): Record<string, number | string> {
  const example: Record<string, number | string> = {}
  for (const input of card.inputs.filter((candidate) => candidate.required)) {
    if (input.default !== undefined) example[input.name] = input.default
    else if (input.categories?.[0] !== undefined) example[input.name] = input.categories[0]
    else {
      const middle = ((input.minimum ?? 0) + (input.maximum ?? input.minimum ?? 0)) / 2
      example[input.name] = input.type === 'integer' ? Math.round(middle) : middle
    }
  }
  return example
}

function withoutNameParameter(operation: Json): Json {
  const parameters = (operation.parameters as Json[] | undefined) ?? []
  return {
    ...operation,
    parameters: parameters.filter(
      (parameter) => !(parameter.in === 'path' && parameter.name === 'name'),
    ),
  }
}

function modelOperation(
  generic: Json | undefined,
  served: ServedVersion,
  kind: 'single' | 'batch',
): Json | undefined {
  if (!generic) return undefined
  const { name, version, card } = served
  const inputs = { $ref: `#/components/schemas/${schemaName(name)}` }
  const example = exampleInputs(card)
  const body =
    kind === 'single'
      ? {
          type: 'object',
          required: ['inputs'],
          properties: { inputs },
          additionalProperties: false,
        }
      : {
          type: 'object',
          required: ['instances'],
          properties: { instances: { type: 'array', minItems: 1, items: inputs } },
          additionalProperties: false,
        }
  return {
    ...withoutNameParameter(generic),
    operationId: `predict${kind === 'batch' ? 'Batch' : ''}_${name.replaceAll('-', '_')}`,
    summary: `${kind === 'batch' ? 'Batch-predict' : 'Predict'} with ${name} (${card.task})`,
    description:
      `${card.description}\n\nServed by version ${version} when this document was made; its ` +
      `card, metrics and versions: \`GET /v1/models/${name}\`.`,
    requestBody: {
      required: true,
      content: {
        'application/json': {
          schema: body,
          example: kind === 'single' ? { inputs: example } : { instances: [example] },
        },
      },
    },
  }
}

function schemaName(model: string): string {
  return `PredictInputs.${model}`
}

/**
 * Adds each served model's own predict operations to the OpenAPI document: the request body
 * is that model's input schema, generated from its card, so clients and Swagger UI see every
 * input with its type, unit, range and categories. The generic `{name}` operations stay for
 * models registered later. The picture routes get their multipart body described.
 */
export function describeServedModels<T>(document: T, served: readonly ServedVersion[]): T {
  const doc = document as OpenApiDocument
  const paths = doc.paths ?? {}
  const schemas = { ...(doc.components?.schemas ?? {}) }
  const added: Record<string, Record<string, Json>> = {}
  // A text model takes prompts at /generate and an image model pictures at predict/image,
  // never predict's inputs.
  const predictors = served.filter(
    (model) => model.card.task !== 'text-generation' && !model.card.image,
  )
  for (const model of [...predictors].sort((a, b) => a.name.localeCompare(b.name))) {
    schemas[schemaName(model.name)] = inputsJsonSchema(model.card)
    for (const kind of ['single', 'batch'] as const) {
      const operation = modelOperation(paths[GENERIC[kind]]?.post, model, kind)
      if (operation) {
        added[GENERIC[kind].replace('{name}', model.name)] = { post: operation }
      }
    }
  }
  for (const path of IMAGE_UPLOAD_PATHS) {
    const operation = paths[path]?.post
    if (operation)
      added[path] = { ...paths[path], post: { ...operation, requestBody: IMAGE_UPLOAD_BODY } }
  }
  return {
    ...doc,
    paths: { ...paths, ...added },
    components: { ...(doc.components ?? {}), schemas },
  } as T
}
