import fc from 'fast-check'
import { type OpenApiDocument, resolve, type Schema } from './operations.js'

/** JSON text sent as it is: numbers JSON.stringify cannot write (1e400), nesting, `__proto__`. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** `value` as JSON, with every RawJson spliced in verbatim. */
export function encodeJson(value: unknown): string {
  if (value instanceof RawJson) return value.text
  const raws: string[] = []
  const text = JSON.stringify(value, (_key, v) =>
    v instanceof RawJson ? `\u0001raw${raws.push(v.text) - 1}\u0001` : v,
  )
  return text.replace(/"\\u0001raw(\d+)\\u0001"/g, (_match, index) => raws[Number(index)] ?? '')
}

/** Values known to exist, by field name, so that valid requests reach the handlers. */
export type FieldPools = Record<string, readonly unknown[]>

/**
 * An arbitrary of values valid for `schema`, kept small (short strings, integers near their
 * minimum) so that most generated requests pass the service's own rules beyond the schema.
 */
export function validValue(
  document: OpenApiDocument,
  raw: Schema,
  pools: FieldPools,
  field = '',
): fc.Arbitrary<unknown> {
  const schema = resolve(document, raw)
  const pool = pools[field]
  if (pool && pool.length > 0) return fc.constantFrom(...pool)
  if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum)
  if ('const' in schema) return fc.constant(schema.const)
  const examples = schema.examples as unknown[] | undefined
  if (examples && examples.length > 0) {
    const { examples: _documented, ...rest } = schema
    return fc.oneof(fc.constantFrom(...examples), validValue(document, rest, pools, field))
  }
  const variants = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined
  if (variants) return fc.oneof(...variants.map((v) => validValue(document, v, pools, field)))
  if (Array.isArray(schema.type)) {
    return fc.oneof(
      ...schema.type.map((type) => validValue(document, { ...schema, type }, pools, field)),
    )
  }
  switch (schema.type) {
    case 'string':
      return validString(schema)
    case 'integer': {
      const min = (schema.minimum as number | undefined) ?? 0
      const max = (schema.maximum as number | undefined) ?? min + 5
      return fc.integer({ min, max })
    }
    case 'number': {
      const min = (schema.minimum as number | undefined) ?? 0
      const max = (schema.maximum as number | undefined) ?? min + 100
      return fc.double({ min, max, noNaN: true, noDefaultInfinity: true })
    }
    case 'boolean':
      return fc.boolean()
    case 'null':
      return fc.constant(null)
    case 'array': {
      const minLength = (schema.minItems as number | undefined) ?? 0
      const maxLength = Math.min((schema.maxItems as number | undefined) ?? 2, minLength + 2)
      const items = validValue(document, (schema.items as Schema) ?? {}, pools, field)
      return fc.array(items, { minLength, maxLength })
    }
    case 'object':
      return validObject(document, schema, pools)
    default:
      return fc.jsonValue({ maxDepth: 2 })
  }
}

function validObject(
  document: OpenApiDocument,
  schema: Schema,
  pools: FieldPools,
): fc.Arbitrary<unknown> {
  const properties = (schema.properties ?? {}) as Record<string, Schema>
  const required = (schema.required ?? []) as string[]
  const record = fc.record(
    Object.fromEntries(
      Object.entries(properties).map(([name, property]) => [
        name,
        validValue(document, property, pools, name),
      ]),
    ),
    { requiredKeys: required },
  )
  const minProperties = (schema.minProperties as number | undefined) ?? 0
  return minProperties > 0
    ? record.filter((value) => Object.keys(value).length >= minProperties)
    : record
}

function validString(schema: Schema): fc.Arbitrary<string> {
  const minLength = (schema.minLength as number | undefined) ?? 0
  const maxLength = Math.min((schema.maxLength as number | undefined) ?? 40, minLength + 40)
  switch (schema.format) {
    case 'uuid':
      return fc.uuid()
    case 'date-time':
      return fc
        .date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
        .map((date) => date.toISOString())
    case 'email':
      return fc.stringMatching(/^[a-z]{1,12}$/).map((local) => `fuzz-${local}@example.com`)
  }
  if (typeof schema.pattern === 'string') {
    // Only the declared bounds: the default cap of 40 would refuse every string of a pattern
    // that fixes a longer length (a PKCE challenge is 43), and generation would never end.
    const declaredMax = (schema.maxLength as number | undefined) ?? Number.POSITIVE_INFINITY
    return fc
      .stringMatching(new RegExp(schema.pattern))
      .filter((text) => text.length >= minLength && text.length <= declaredMax)
  }
  return fc.string({ minLength, maxLength, unit: 'grapheme-ascii' })
}

/** Long enough to cross any documented maxLength, and then some. */
const LONG = 'a'.repeat(10_000)

/** Strings that have broken services: NUL, lone surrogates, injection, control characters. */
export const HOSTILE_STRINGS: readonly string[] = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  LONG,
  'é'.repeat(3000),
  '\u202eevil',
  "' OR '1'='1",
  '"; --',
  '../../../etc/passwd',
  '%00',
  '{{7*7}}#{7*7}',
  '__proto__',
  'constructor',
  '\r\nX-Injected: 1',
  '💩'.repeat(50),
]

/** Numbers at and past every edge, as JSON text (1e400 is Infinity to JSON.parse). */
export const HOSTILE_NUMBERS: readonly string[] = [
  '1e400',
  '-1e400',
  '99999999999999999999',
  '-99999999999999999999',
  '-0',
  '0',
  '-1',
  '1.5',
  '9007199254740993',
  '1e-400',
  '2147483648',
]

const deep = (depth: number) => new RawJson(`${'['.repeat(depth)}${']'.repeat(depth)}`)

/** Any JSON value a body field might be replaced with. */
export const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...HOSTILE_STRINGS),
  fc.constantFrom(...HOSTILE_NUMBERS).map((text) => new RawJson(text)),
  fc.constantFrom<unknown>(null, true, false, [], {}, [null], { a: 1 }, '1', 1),
  fc.constantFrom(deep(64), deep(5000)),
  fc.constant(new RawJson('{"__proto__":{"polluted":true}}')),
  fc.constant(new RawJson('{"constructor":{"prototype":{"polluted":true}}}')),
)

/** Query or path text, already percent-encoded where it has to be; bad encodings on purpose. */
export const hostileUrlText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...HOSTILE_NUMBERS, 'NaN', 'Infinity', '0x10', '1,2', 'true', 'null'),
  fc.constantFrom('%00', 'a%00b', '%ED%A0%80', '%', '%zz', '%C0%AF', '%F0%9F%92%A9', '%2F..%2F'),
  // No dot segments (`..`, `%2E`): every URL client resolves those before sending.
  fc.constantFrom('', '..%2F', 'a%2Fb', '%20', 'a'.repeat(300), 'a'.repeat(5000)),
  fc.constantFrom(...HOSTILE_STRINGS).map((text) => {
    try {
      return encodeURIComponent(text)
    } catch {
      return '%ED%A0%80' // a lone surrogate has no UTF-8 form: send the bytes it would take
    }
  }),
)
