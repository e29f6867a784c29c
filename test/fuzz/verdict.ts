import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import type { Operation, Schema } from './operations.js'

/** What a response did wrong; a class of failure groups the same defect across requests. */
export interface Violation {
  kind:
    | '5xx'
    | 'undocumented status'
    | 'not problem+json'
    | 'schema violation'
    | 'leaks SQL or a stack'
    | 'no answer'
  detail: string
}

export interface Answer {
  statusCode: number
  headers: Record<string, string | string[] | number | undefined>
  body: string
}

/** RFC 9457 members every problem document of this service carries. */
const PROBLEM_MEMBERS = ['type', 'title', 'status', 'detail', 'instance'] as const

/** Text that only a driver, a query or a stack trace would put in a body. */
const LEAKS: [string, RegExp][] = [
  [
    'SQL',
    /\b(select|insert\s+into|update|delete\s+from)\b[\s\S]{1,200}\b(from|where|values|set|returning)\b/i,
  ],
  [
    'SQL',
    /syntax error at or near|violates [a-z ]+ constraint|relation "[^"]+"|invalid input syntax for/i,
  ],
  ['SQL', /Failed query:/i],
  ['stack', /\bat [\w.<>]+ \(?(file:\/\/|\/|node:)[^)]*:\d+:\d+\)?/],
  ['stack', /node_modules\/|\.(ts|js|mjs):\d+:\d+/],
]

export function createVerdict(documentSchemas: Record<string, Schema>) {
  const ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: true })
  addFormats.default(ajv)
  ajv.addSchema({ $id: 'openapi', components: { schemas: documentSchemas } })
  const compiled = new Map<Schema, ReturnType<typeof ajv.compile>>()
  const validatorOf = (schema: Schema) => {
    let validate = compiled.get(schema)
    if (!validate) {
      // Local refs point into the document, registered above as `openapi`.
      const text = JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/')
      validate = ajv.compile(JSON.parse(text))
      compiled.set(schema, validate)
    }
    return validate
  }

  /** Every rule the response breaks; empty when it keeps them all. */
  return function judge(operation: Operation, answer: Answer): Violation[] {
    const violations: Violation[] = []
    const status = answer.statusCode
    const contentType = String(answer.headers['content-type'] ?? '')
    if (status >= 500) {
      const code = (parseJson(answer.body) as { code?: unknown } | undefined)?.code
      violations.push({ kind: '5xx', detail: String(code ?? '') })
    } else if (!operation.responses.has(status)) {
      violations.push({ kind: 'undocumented status', detail: '' })
    }
    for (const [label, pattern] of LEAKS) {
      if (pattern.test(answer.body))
        violations.push({ kind: 'leaks SQL or a stack', detail: label })
    }
    const schema = operation.responses.get(status)
    // An error is a problem document unless the operation documents another format for
    // it, as the token endpoint does with RFC 6749 errors.
    const problem = status >= 400 && !(schema && !requiresProblemMembers(schema))
    const wrongFormat = problem ? problemViolations(status, contentType, answer.body) : []
    violations.push(...wrongFormat)
    if (schema && status !== 204 && wrongFormat.length === 0) {
      const validate = validatorOf(schema)
      const typeOk = contentType.startsWith(
        problem ? 'application/problem+json' : 'application/json',
      )
      if (!typeOk || !validate(parseJson(answer.body))) {
        const error = validate.errors?.[0]
        violations.push({
          kind: 'schema violation',
          detail:
            typeOk && error
              ? `${error.instancePath || '/'} ${error.message}`
              : `content-type ${contentType}`,
        })
      }
    }
    return violations
  }
}

function requiresProblemMembers(schema: Schema): boolean {
  const required = (schema.required ?? []) as string[]
  return PROBLEM_MEMBERS.every((member) => required.includes(member))
}

function problemViolations(status: number, contentType: string, text: string): Violation[] {
  if (!contentType.startsWith('application/problem+json')) {
    return [{ kind: 'not problem+json', detail: `content-type ${contentType || '(none)'}` }]
  }
  const body = parseJson(text) as Record<string, unknown> | undefined
  const missing = PROBLEM_MEMBERS.filter((member) => body?.[member] === undefined)
  if (missing.length > 0) {
    return [{ kind: 'not problem+json', detail: `missing ${missing.join(', ')}` }]
  }
  if (body?.status !== status) {
    return [{ kind: 'not problem+json', detail: `status member ${body?.status} on a ${status}` }]
  }
  return []
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
