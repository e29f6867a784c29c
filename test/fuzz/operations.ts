/** The parts of an OpenAPI 3.1 document the fuzzer reads; JSON Schema stays untyped. */
export type Schema = Record<string, unknown>

export interface Parameter {
  name: string
  in: 'path' | 'query' | 'header' | 'cookie'
  required?: boolean
  schema: Schema
}

export interface Operation {
  /** `GET /v1/orders/{id}`: how reports name it. */
  id: string
  method: string
  path: string
  parameters: Parameter[]
  /** The first documented media type and its schema, when the operation takes a body. */
  body?: { mediaType: string; schema: Schema; example?: unknown }
  /** Documented statuses, each with its JSON schema when it has one. */
  responses: Map<number, Schema | undefined>
  secured: boolean
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, Record<string, unknown>>>
  components?: { schemas?: Record<string, Schema> }
}

const METHODS = new Set(['get', 'post', 'put', 'patch', 'delete'])

/** Every operation of the document, in document order. */
export function operationsOf(document: OpenApiDocument): Operation[] {
  const operations: Operation[] = []
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, raw] of Object.entries(item)) {
      if (!METHODS.has(method)) continue
      const op = raw as {
        parameters?: Parameter[]
        requestBody?: { content?: Record<string, { schema: Schema; example?: unknown }> }
        responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>
        security?: unknown[]
      }
      const [mediaType, media] = Object.entries(op.requestBody?.content ?? {})[0] ?? []
      const responses = new Map<number, Schema | undefined>()
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        const content = response.content ?? {}
        const json = content['application/json'] ?? content['application/problem+json']
        responses.set(Number(status), json?.schema)
      }
      operations.push({
        id: `${method.toUpperCase()} ${path}`,
        method: method.toUpperCase(),
        path,
        parameters: op.parameters ?? [],
        body:
          mediaType && media
            ? { mediaType, schema: media.schema, example: media.example }
            : undefined,
        responses,
        secured: (op.security ?? []).length > 0,
      })
    }
  }
  return operations
}

/** Resolves a local `$ref` (`#/components/schemas/X`) against the document. */
export function resolve(document: OpenApiDocument, schema: Schema): Schema {
  const ref = schema.$ref
  if (typeof ref !== 'string') return schema
  const name = decodeURIComponent(ref.replace('#/components/schemas/', ''))
  const target = document.components?.schemas?.[name]
  if (!target) throw new Error(`unresolved $ref ${ref}`)
  return resolve(document, target)
}
