import { ROLES } from './callers.js'
import type { Operation } from './operations.js'
import { toInject } from './requests.js'
import type { FuzzRun, Outcome } from './runner.js'

/** One class of failure: the same rule broken the same way, with one example to replay. */
export interface FailureClass {
  key: string
  operations: Set<string>
  count: number
  example: Outcome
}

const SEVERE = new Set(['5xx', 'leaks SQL or a stack', 'no answer'])

/** The mutated part and its value, with array indexes folded (`body.items.0.x` = `items.*.x`). */
function inputOf({ request }: Outcome): string {
  if (!request.mutation) return 'a valid request'
  const at = request.mutation.at.replace(/\.\d+(?=\.|$)/g, '.*')
  return `${at} = ${excerpt(request.mutation.value, 40)}`
}

/** Failures grouped by what went wrong (kind, status, detail), not by which request. */
export function failureClasses(run: FuzzRun): FailureClass[] {
  const classes = new Map<string, FailureClass>()
  const add = (key: string, outcome: Outcome) => {
    const found = classes.get(key)
    if (found) {
      found.count++
      found.operations.add(outcome.operation.id)
    } else {
      classes.set(key, {
        key,
        operations: new Set([outcome.operation.id]),
        count: 1,
        example: outcome,
      })
    }
  }
  for (const outcome of run.outcomes) {
    for (const violation of outcome.violations) {
      const key = `${violation.kind}: ${outcome.answer.statusCode} ${violation.detail}`.trim()
      // A crash or a leak is told apart by the input that caused it, other kinds by status.
      const cause = SEVERE.has(violation.kind) ? ` ← ${inputOf(outcome)}` : ''
      add(`${key}${cause}`, outcome)
    }
  }
  for (const miss of run.authMatrix.misses) {
    add(`auth matrix: ${miss.role} answered ${miss.answer.statusCode}, not 401`, miss)
  }
  return [...classes.values()].sort((a, b) => b.count - a.count)
}

export function summary(run: FuzzRun, operations: Operation[]): string {
  const count = (kind: string) =>
    run.outcomes.filter((o) => o.violations.some((v) => v.kind === kind)).length
  const valid = run.outcomes.filter((o) => !o.request.mutation && !o.role.startsWith('bad'))
  const reached = new Set(valid.filter((o) => o.answer.statusCode < 300).map((o) => o.operation.id))
  const { authMatrix: auth } = run
  const percent = auth.total === 0 ? 100 : (100 * auth.refused) / auth.total
  return [
    `${run.outcomes.length} requests over ${operations.length} operations, ${ROLES.length} roles, ` +
      `${count('5xx')} × 5xx, ${count('schema violation')} schema violations`,
    `  undocumented statuses ${count('undocumented status')}, errors not problem+json ` +
      `${count('not problem+json')}, SQL or stack in a body ${count('leaks SQL or a stack')}, ` +
      `unanswered ${count('no answer')}`,
    `  valid requests answered 2xx: ${valid.filter((o) => o.answer.statusCode < 300).length} of ` +
      `${valid.length}, reaching ${reached.size} of ${operations.length} operations`,
    `  no valid request answered 2xx: ${operations
      .filter((op) => !reached.has(op.id))
      .map((op) => op.id)
      .join(', ')}`,
    `Auth matrix: ${auth.operations} operations × ${auth.kinds} bad-credential kinds → ` +
      `${auth.refused}/${auth.total} answered 401 (${percent.toFixed(1)} %)`,
  ].join('\n')
}

const excerpt = (text: string, length: number) =>
  text.length > length ? `${text.slice(0, length)}… (${text.length} chars)` : text

export function describeFailures(classes: FailureClass[]): string {
  return classes
    .map(({ key, operations, count, example }) => {
      const request = toInject(example.request, example.operation)
      return [
        `✗ ${key} — ${count}× on ${operations.size} operation(s), e.g. ${example.operation.id}`,
        `    as ${example.role}: ${request.method} ${excerpt(request.url, 120)}` +
          (example.request.mutation ? `  [${inputOf(example)}]` : ''),
        ...(request.payload !== undefined ? [`    body: ${excerpt(request.payload, 120)}`] : []),
        `    → ${example.answer.statusCode} ${example.answer.headers['content-type'] ?? ''}: ${excerpt(example.answer.body, 200)}`,
      ].join('\n')
    })
    .join('\n')
}
