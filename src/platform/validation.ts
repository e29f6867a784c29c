import {
  Ajv,
  type AnySchemaObject,
  type ErrorObject,
  type Options,
  type ValidateFunction,
} from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifyInstance, FastifySchema, FastifySchemaCompiler } from 'fastify'
import fp from 'fastify-plugin'
import { type FieldError, ValidationFailed } from '../shared/errors.js'
import { problemResponses } from '../shared/schemas.js'

const common: Options = {
  allErrors: true, // report every problem in one answer, not the first one only
  useDefaults: true,
  removeAdditional: false, // unknown properties are an error, never silently dropped
  verbose: true, // keeps parentSchema, used to phrase pattern errors
  strict: false, // OpenAPI keywords such as `examples` are not ajv's business
  strictNumbers: true, // JSON.parse reads 1e400 as Infinity; no number field accepts it
}

function createAjv(options: Options): Ajv {
  const ajv = new Ajv({ ...common, ...options })
  addFormats.default(ajv)
  // ajv-formats' uuid also admits `urn:uuid:...`, which PostgreSQL's uuid type refuses.
  ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i)
  return ajv
}

// JSON bodies already carry types: "10" for an integer is a client bug to report, not to fix.
const bodyAjv = createAjv({ coerceTypes: false })
// Query strings, params and headers are text by nature: coerce them by their schema types.
const textAjv = createAjv({ coerceTypes: 'array' })

/**
 * Each validator is compiled on the first request it checks, not at start: compiling every
 * route's schemas up front took about a tenth of start-up's main-thread CPU, for routes a
 * process may never serve. The first request of a route pays for its own, once.
 */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  let compiled: ValidateFunction | undefined
  const validate = ((data: unknown) => {
    compiled ??= withStorableValues(
      (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object),
    )
    const valid = compiled(data)
    // Fastify reads the errors from the function it was handed.
    validate.errors = compiled.errors
    return valid
  }) as ValidateFunction
  return validate
}

/**
 * Validates input that does not arrive over HTTP (the CLI, start-up settings) by the same
 * rules as a request body, so both paths report problems alike.
 */
export function assertValid<T>(schema: object, value: unknown, part = 'input'): T {
  const validate = withStorableValues(bodyAjv.compile(schema))
  if (!validate(value)) {
    throw new ValidationFailed(
      toFieldErrors(validate.errors ?? [], part),
      'The input is not valid.',
    )
  }
  return value as T
}

// With the `u` flag a well-formed surrogate pair reads as one code point, so only a lone
// surrogate matches. PostgreSQL's UTF-8 text can store neither it nor NUL.
const LONE_SURROGATE = /\p{Cs}/u
const unstorable = (text: string) => text.includes('\u0000') || LONE_SURROGATE.test(text)

/**
 * Adds, to a compiled schema, the rules no single schema keyword states for every field:
 * no string (value or key) holds NUL or a lone surrogate, and no number is infinite. The
 * check runs after ajv, on the coerced data, so a query string `1e400` that coercion turned
 * into Infinity is caught too. One pass over the input, whatever the schema.
 */
function withStorableValues(validate: ValidateFunction): ValidateFunction {
  const safe = ((data: unknown) => {
    const valid = validate(data)
    const unsafe = findUnsafeValues(data)
    if (unsafe.length === 0) {
      safe.errors = validate.errors ?? []
      return valid
    }
    const flagged = new Set((validate.errors ?? []).map((error) => error.instancePath))
    safe.errors = [
      ...(validate.errors ?? []),
      ...unsafe.filter((error) => !flagged.has(error.instancePath)),
    ]
    return false
  }) as ValidateFunction
  safe.schema = validate.schema
  return safe
}

/** A value waiting to be checked, and where it sits: its parent and its key there. */
interface Visit {
  data: unknown
  parent: Visit | undefined
  key: string | number
}

/**
 * The JSON pointer of a visited value, built only for a value found unsafe: building one per
 * value (a string and two escapes per key) was most of this check's cost on a clean body,
 * e.g. a 32-instance batch prediction.
 */
function pointerOf(visit: Visit): string {
  const keys: string[] = []
  for (let at: Visit | undefined = visit; at?.parent; at = at.parent) {
    keys.push(String(at.key).replace(/~/g, '~0').replace(/\//g, '~1'))
  }
  return keys.length === 0 ? '' : `/${keys.reverse().join('/')}`
}

/** Iterative, so that a body nested thousands of levels deep cannot overflow the stack. */
function findUnsafeValues(input: unknown): ErrorObject[] {
  const found: ErrorObject[] = []
  const pending: Visit[] = [{ data: input, parent: undefined, key: '' }]
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { data } = next
    if (typeof data === 'string') {
      if (unstorable(data)) {
        found.push(unsafe(pointerOf(next), 'must not contain NUL characters or lone surrogates'))
      }
    } else if (typeof data === 'number') {
      if (!Number.isFinite(data)) found.push(unsafe(pointerOf(next), 'must be a finite number'))
    } else if (Array.isArray(data)) {
      for (let index = 0; index < data.length; index++) {
        pending.push({ data: data[index], parent: next, key: index })
      }
    } else if (data !== null && typeof data === 'object') {
      for (const key in data) {
        if (!Object.hasOwn(data, key)) continue
        const child: Visit = { data: (data as Record<string, unknown>)[key], parent: next, key }
        if (unstorable(key)) {
          found.push(
            unsafe(pointerOf(child), 'must be a name without NUL characters or lone surrogates'),
          )
        } else {
          pending.push(child)
        }
      }
    }
  }
  return found
}

function unsafe(instancePath: string, message: string): ErrorObject {
  return { keyword: 'unsafeValue', instancePath, schemaPath: '#', params: {}, message }
}

const NO_QUERY = { type: 'object', properties: {}, additionalProperties: false }

/**
 * Closes every documented route's query string: one that declares none gets a closed, empty
 * one (and a documented 422), one that declares some but leaves `additionalProperties` unset
 * is closed. So `?pagesize=5` is a 422 everywhere, as on a list, never silently ignored.
 * Registered before the routes.
 */
export const closedQueryStrings = fp(
  async (app: FastifyInstance) => {
    app.addHook('onRoute', (route) => {
      const schema = route.schema as (FastifySchema & { hide?: boolean }) | undefined
      if (!schema || schema.hide) return
      const query = schema.querystring as { additionalProperties?: unknown } | undefined
      if (query) {
        // A declared query string is closed too unless it says otherwise.
        if (query.additionalProperties === undefined) {
          schema.querystring = { ...query, additionalProperties: false }
        }
        return
      }
      schema.querystring = NO_QUERY
      if (schema.response) schema.response = { ...problemResponses(422), ...schema.response }
    })
  },
  { name: 'closed-query-strings' },
)

const PART_NAMES: Record<string, string> = { querystring: 'query' }

/** Turns ajv errors into `{path, message}` pairs such as `body.items[1].quantity`. */
export function toFieldErrors(errors: ErrorObject[], part: string | undefined): FieldError[] {
  const root = part ? (PART_NAMES[part] ?? part) : 'body'
  const fieldErrors = errors.map((error) => {
    let path = pointerToPath(root, error.instancePath)
    let message = error.message ?? 'is invalid'
    if (error.keyword === 'required') {
      path = childPath(path, error.params.missingProperty)
      message = 'is required'
    } else if (error.keyword === 'additionalProperties') {
      path = childPath(path, error.params.additionalProperty)
      message = 'is not allowed'
    } else if (error.keyword === 'pattern' && error.parentSchema?.description) {
      message = `must be ${error.parentSchema.description}`
    } else if (error.keyword === 'type' && expectation(error.parentSchema)) {
      // `19.99` where "19.99" is expected says more than "must be string".
      message = `must be ${expectation(error.parentSchema)}`
    } else if (error.keyword === 'enum') {
      message = `must be one of: ${(error.params.allowedValues as unknown[]).join(', ')}`
    }
    return { path, message }
  })
  // A type and an enum error on one field can read the same once phrased; say it once.
  const seen = new Set<string>()
  return fieldErrors.filter(({ path, message }) => {
    const key = `${path}\n${message}`
    return !seen.has(key) && Boolean(seen.add(key))
  })
}

/**
 * What a string field expects, for a type error: the description of a patterned string (the
 * phrase its pattern errors use, e.g. `a decimal string …, e.g. "19.99"`), or an enum's values.
 */
function expectation(parentSchema: AnySchemaObject | undefined) {
  const schema = (parentSchema ?? {}) as {
    pattern?: string
    description?: string
    enum?: unknown[]
  }
  if (schema.pattern && schema.description) return schema.description
  if (schema.enum) return `one of: ${schema.enum.join(', ')}`
  return undefined
}

// Hyphens included: header names (`headers.idempotency-key`) are named plainly too.
const PLAIN_KEY = /^[A-Za-z_][\w-]*$/

/**
 * `parent` one step deeper, as field errors name places: `[1]` for an array index, `.quantity`
 * for a plain name (letters, digits, `_` and `-`, not led by a digit), `["a.b"]` (a JSON
 * string) for any other key, so that a key holding a dot, a bracket, a slash or a space cannot
 * pass for a nested path.
 */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`
  return PLAIN_KEY.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`
}

/**
 * A JSON pointer below `root`. The pointer does not tell an array index from an object key of
 * digits; both read as an index, which is what such a segment almost always is.
 */
function pointerToPath(root: string, pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<string>(
      (path, segment) => childPath(path, /^\d+$/.test(segment) ? Number(segment) : segment),
      root,
    )
}
