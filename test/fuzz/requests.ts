import fc from 'fast-check'
import type { OpenApiDocument, Operation } from './operations.js'
import {
  encodeJson,
  type FieldPools,
  HOSTILE_NUMBERS,
  HOSTILE_STRINGS,
  hostileJson,
  hostileUrlText,
  RawJson,
  validValue,
} from './values.js'

/** One request to send, before credentials; texts in `path` and `query` are URL-encoded. */
export interface FuzzRequest {
  method: string
  path: string
  query: [string, string][]
  /** `undefined` removes a header the request would otherwise carry. */
  headers: Record<string, string | undefined>
  /** A JSON value to encode with the operation's media type, or raw text sent as is. */
  body?: { value: unknown } | { raw: string }
  /** What makes this request invalid, where and with what; absent on valid requests. */
  mutation?: { at: string; value: string }
}

/** Existing ids and names for path parameters, and values for body fields by name. */
export interface Pools {
  pathParameter(operation: Operation, name: string): readonly string[]
  fields: FieldPools
}

/** Requests valid for the operation's schemas, using existing ids where it names one. */
export function validRequest(
  document: OpenApiDocument,
  operation: Operation,
  pools: Pools,
): fc.Arbitrary<FuzzRequest> {
  const pathValues = operation.parameters
    .filter((p) => p.in === 'path')
    .map((p) => {
      const known = pools.pathParameter(operation, p.name)
      const value =
        known.length > 0
          ? fc.constantFrom(...known)
          : validValue(document, p.schema, {}).map(String)
      return value.map((v) => [p.name, encodeURIComponent(v)] as const)
    })
  const optional = <T>(parameter: { required?: boolean }, value: fc.Arbitrary<T>) =>
    parameter.required ? value.map((v) => [v]) : fc.option(value).map((v) => (v ? [v] : []))
  const queryValues = operation.parameters
    .filter((p) => p.in === 'query')
    .map((p) =>
      optional(
        p,
        validValue(document, p.schema, pools.fields, p.name).map(
          (v) => [p.name, encodeURIComponent(String(v))] as [string, string],
        ),
      ),
    )
  const headerValues = operation.parameters
    .filter((p) => p.in === 'header')
    .map((p) =>
      optional(
        p,
        validValue(document, p.schema, pools.fields, p.name).map(
          (v) => [p.name, String(v)] as const,
        ),
      ),
    )
  const body = operation.body
    ? validValue(document, operation.body.schema, pools.fields).map((value) => ({ value }))
    : fc.constant(undefined)
  return fc
    .record({
      path: fc.tuple(...pathValues),
      query: fc.tuple(...queryValues),
      headers: fc.tuple(...headerValues),
      body,
    })
    .map(({ path, query, headers, body }) => ({
      method: operation.method,
      path: path.reduce((url, [name, value]) => url.replace(`{${name}}`, value), operation.path),
      query: query.flat(),
      headers: Object.fromEntries(headers.flat()),
      body,
    }))
}

/** A change that makes a valid request invalid, described for the report. */
type Mutation = (request: FuzzRequest, operation: Operation) => FuzzRequest

const describe = (
  request: FuzzRequest,
  at: string,
  value: string,
  changes: Partial<FuzzRequest>,
): FuzzRequest => ({ ...request, ...changes, mutation: { at, value } })

/** Every JSON path (`items.0.quantity`) of a value, the root excluded. */
function pathsOf(value: unknown, prefix: string[] = [], depth = 0): string[][] {
  if (value === null || typeof value !== 'object' || value instanceof RawJson || depth > 3)
    return []
  return Object.keys(value).flatMap((key) => [
    [...prefix, key],
    ...pathsOf((value as Record<string, unknown>)[key], [...prefix, key], depth + 1),
  ])
}

function setPath(value: unknown, path: string[], replacement: unknown): unknown {
  const [head, ...rest] = path
  if (head === undefined) return replacement
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<
    string,
    unknown
  >
  copy[head] = setPath(copy[head], rest, replacement)
  return copy
}

function bodyValue(request: FuzzRequest): unknown {
  return request.body && 'value' in request.body ? request.body.value : undefined
}

const hostileNumber = fc.constantFrom(...HOSTILE_NUMBERS).map((text) => new RawJson(text))

const bodyField = fc
  .record({
    pick: fc.nat(),
    dice: fc.nat(3),
    any: hostileJson,
    text: fc.constantFrom(...HOSTILE_STRINGS),
    number: hostileNumber,
    unknownField: fc.string({ minLength: 1, maxLength: 12 }),
  })
  .map(
    ({ pick, dice, any, text, number, unknownField }): Mutation =>
      (request) => {
        const value = bodyValue(request)
        const paths = pathsOf(value)
        const path = paths.length > 0 ? (paths[pick % paths.length] as string[]) : [unknownField]
        const current = path.reduce<unknown>(
          (node, key) => (node as Record<string, unknown> | undefined)?.[key],
          value,
        )
        // Mostly a hostile value of the field's own type, which passes the type check.
        const typed =
          typeof current === 'string' ? text : typeof current === 'number' ? number : any
        const replacement = dice === 0 ? any : typed
        const target = value !== null && typeof value === 'object' ? value : {}
        return describe(request, `body.${path.join('.')}`, show(replacement), {
          body: { value: setPath(target, path, replacement) },
        })
      },
  )

const bodyShape = fc
  .oneof(
    hostileJson.map((replacement) => ({ value: replacement })),
    fc.constantFrom('{"a":', '{', '', '[1,]', "{'a':1}", '{"a":1}{"b":2}', '\u0000', 'null'),
  )
  .map(
    (body): Mutation =>
      (request) => {
        const replacement = typeof body === 'string' ? { raw: body } : body
        const label = typeof body === 'string' ? JSON.stringify(body) : show(body.value)
        return describe(request, 'body', label, { body: replacement })
      },
  )

const unknownOrProto = fc
  .constantFrom(
    ['zz_unknown', '1'],
    ['__proto__', '{"polluted":true}'],
    ['constructor', '{"prototype":{"polluted":true}}'],
  )
  .map(
    ([key, json]): Mutation =>
      (request) => {
        const value = bodyValue(request)
        const fields = value && typeof value === 'object' && !Array.isArray(value) ? value : {}
        const inner = encodeJson(fields).slice(1, -1)
        const raw = `{${inner}${inner ? ',' : ''}${JSON.stringify(key)}:${json}}`
        return describe(request, `body.${key}`, json, { body: { raw } })
      },
  )

const dropRequired = fc.nat().map(
  (pick): Mutation =>
    (request) => {
      const value = bodyValue(request)
      if (!value || typeof value !== 'object' || Array.isArray(value)) return request
      const keys = Object.keys(value)
      const key = keys[pick % Math.max(keys.length, 1)]
      if (key === undefined) return describe(request, 'body', '{}', { body: { value: {} } })
      const { [key]: _dropped, ...rest } = value as Record<string, unknown>
      return describe(request, `body.${key}`, '(left out)', { body: { value: rest } })
    },
)

const contentType = fc
  .constantFrom<[string, Record<string, string | undefined>]>(
    ['no content-type', { 'content-type': undefined }],
    ['content-type text/plain', { 'content-type': 'text/plain' }],
    ['content-type application/xml', { 'content-type': 'application/xml' }],
    ['content-type with charset latin1', { 'content-type': 'application/json; charset=latin1' }],
    ['content-type garbage', { 'content-type': ';;;' }],
    ['content-encoding gzip, body not gzip', { 'content-encoding': 'gzip' }],
    ['content-encoding br, body not br', { 'content-encoding': 'br' }],
  )
  .map(
    ([label, headers]): Mutation =>
      (request) => {
        const body = request.body ?? { value: {} }
        return describe(request, 'headers', label, {
          headers: { ...request.headers, ...headers },
          body,
        })
      },
  )

const queryParameter = fc
  .tuple(fc.nat(), fc.nat(2), hostileUrlText, fc.constantFrom(...HOSTILE_NUMBERS))
  .map(
    ([pick, dice, any, number]): Mutation =>
      (request, operation) => {
        const parameters = operation.parameters.filter((p) => p.in === 'query')
        const names = [...parameters.map((p) => p.name), 'zz_unknown']
        const name = names[pick % names.length] as string
        const type = parameters.find((p) => p.name === name)?.schema.type
        // Mostly numbers at the edges for numeric parameters: that is where they break.
        const text = (type === 'integer' || type === 'number') && dice > 0 ? number : any
        const query = [...request.query.filter(([key]) => key !== name), [name, text]] as [
          string,
          string,
        ][]
        return describe(request, `query ${name}`, text, { query })
      },
  )

const pathParameter = fc.tuple(fc.nat(), hostileUrlText).map(
  ([pick, text]): Mutation =>
    (request, operation) => {
      const names = operation.parameters.filter((p) => p.in === 'path').map((p) => p.name)
      const name = names[pick % Math.max(names.length, 1)]
      if (name === undefined) return request
      const index = operation.path.split('/').indexOf(`{${name}}`)
      const segments = request.path.split('/')
      segments[index] = text
      return describe(request, `path {${name}}`, text, {
        path: segments.join('/'),
      })
    },
)

const header = fc
  .tuple(
    fc.constantFrom('idempotency-key', 'x-request-id', 'accept', 'x-api-key'),
    fc.constantFrom('', ' ', 'a'.repeat(5000), 'é', '\t', '*/*;q=bad', 'ofk_', '%00'),
  )
  .map(
    ([name, value]): Mutation =>
      (request) =>
        describe(request, `header ${name}`, JSON.stringify(value), {
          headers: { ...request.headers, [name]: value },
        }),
  )

/** One mutation, weighted towards the parts the operation has. */
export function mutation(operation: Operation): fc.Arbitrary<Mutation> {
  const hasPath = operation.parameters.some((p) => p.in === 'path')
  const arbitraries: fc.WeightedArbitrary<Mutation>[] = [
    { arbitrary: queryParameter, weight: 2 },
    { arbitrary: header, weight: 1 },
  ]
  if (hasPath) arbitraries.push({ arbitrary: pathParameter, weight: 3 })
  if (operation.body) {
    arbitraries.push(
      { arbitrary: bodyField, weight: 5 },
      { arbitrary: bodyShape, weight: 2 },
      { arbitrary: unknownOrProto, weight: 2 },
      { arbitrary: dropRequired, weight: 1 },
      { arbitrary: contentType, weight: 1 },
    )
  }
  return fc.oneof(...arbitraries)
}

/** The request as `app.inject` options. */
export function toInject(request: FuzzRequest, operation: Operation) {
  const query = request.query.map(([key, value]) => `${encodeURIComponent(key)}=${value}`)
  const url = query.length > 0 ? `${request.path}?${query.join('&')}` : request.path
  const headers: Record<string, string> = {}
  let payload: string | undefined
  if (request.body) {
    const mediaType = operation.body?.mediaType ?? 'application/json'
    payload = 'raw' in request.body ? request.body.raw : encodeBody(request.body.value, mediaType)
    headers['content-type'] = mediaType
  }
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) delete headers[name]
    else headers[name] = value
  }
  return { method: request.method, url, headers, payload }
}

function encodeBody(value: unknown, mediaType: string): string {
  if (mediaType !== 'application/x-www-form-urlencoded') return encodeJson(value)
  const form = new URLSearchParams()
  if (value && typeof value === 'object' && !(value instanceof RawJson)) {
    for (const [key, field] of Object.entries(value)) {
      form.append(key, field instanceof RawJson ? field.text : String(field))
    }
  }
  return form.toString()
}

/** A short, readable form of a value for the report. */
export function show(value: unknown): string {
  const text = value instanceof RawJson ? value.text : encodeJson(value)
  return text.length > 60 ? `${text.slice(0, 57)}... (${text.length} chars)` : text
}
