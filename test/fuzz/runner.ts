import fc from 'fast-check'
import type { InjectOptions } from 'fastify'
import type { App } from '../../src/app.js'
import { type Callers, ROLES } from './callers.js'
import type { OpenApiDocument, Operation } from './operations.js'
import { type FuzzRequest, mutation, type Pools, toInject, validRequest } from './requests.js'
import type { Answer, Violation } from './verdict.js'

export interface FuzzSettings {
  seed: number
  /** Valid and invalid requests per operation and role. */
  valid: number
  invalid: number
  /** A request unanswered for this long counts as a failure ("no answer"). */
  answerTimeoutMs: number
}

export interface Outcome {
  operation: Operation
  role: string
  request: FuzzRequest
  answer: Answer
  violations: Violation[]
}

export interface FuzzRun {
  outcomes: Outcome[]
  /** Secured operations × bad-credential kinds, and the answers that were not 401. */
  authMatrix: {
    operations: number
    kinds: number
    refused: number
    total: number
    misses: Outcome[]
  }
}

type Judge = (operation: Operation, answer: Answer) => Violation[]

/**
 * Destructive operations last, so that what they remove (rows, keys, tokens) is still
 * there for the others; the order is otherwise the document's.
 */
function inFuzzOrder(operations: Operation[]): Operation[] {
  const rank = (op: Operation) =>
    op.method === 'DELETE'
      ? 2
      : op.id === 'POST /v1/auth/revoke' || op.id === 'PATCH /v1/users/me'
        ? 1
        : 0
  return [...operations].sort((a, b) => rank(a) - rank(b))
}

export async function runFuzz(
  app: App,
  document: OpenApiDocument,
  operations: Operation[],
  callers: Callers,
  pools: Pools,
  judge: Judge,
  settings: FuzzSettings,
): Promise<FuzzRun> {
  const send = async (
    operation: Operation,
    role: string,
    request: FuzzRequest,
    headers: Record<string, string>,
  ) => {
    const options = toInject(request, operation)
    const answer = await answerWithin(
      app.inject({
        ...options,
        method: options.method as InjectOptions['method'],
        headers: { ...headers, ...options.headers },
      }),
      settings.answerTimeoutMs,
    )
    const violations = answer
      ? judge(operation, answer)
      : [{ kind: 'no answer' as const, detail: `${settings.answerTimeoutMs} ms` }]
    return {
      operation,
      role,
      request,
      answer: answer ?? { statusCode: 0, headers: {}, body: '' },
      violations,
    }
  }

  const outcomes: Outcome[] = []
  const secured = operations.filter((op) => op.secured)
  const misses: Outcome[] = []
  // Before fuzzing changes anything: every bad credential on every secured operation.
  for (const [index, operation] of secured.entries()) {
    const [request] = fc.sample(validRequest(document, operation, pools), {
      seed: settings.seed + index,
      numRuns: 1,
    })
    for (const [kind, headers] of callers.badCredentials) {
      const outcome = await send(
        operation,
        `bad credentials: ${kind}`,
        request as FuzzRequest,
        headers,
      )
      outcomes.push(outcome)
      if (outcome.answer.statusCode !== 401) misses.push(outcome)
    }
  }
  const authTotal = secured.length * callers.badCredentials.length

  for (const [index, operation] of inFuzzOrder(operations).entries()) {
    const valid = validRequest(document, operation, pools)
    const invalid = fc
      .tuple(valid, mutation(operation))
      .map(([request, mutate]) => mutate(request, operation))
    for (const [roleIndex, role] of ROLES.entries()) {
      const seed = settings.seed + 1000 * (index + 1) + roleIndex
      // Without credentials most requests stop at authentication: a few suffice there.
      const share = role === 'no credentials' || role === 'bad credentials' ? 4 : 1
      const requests = [
        ...fc.sample(valid, { seed, numRuns: Math.ceil(settings.valid / share) }),
        ...fc.sample(invalid, { seed, numRuns: Math.ceil(settings.invalid / share) }),
      ]
      for (const [attempt, request] of requests.entries()) {
        outcomes.push(await send(operation, role, request, callers.headersOf(role, attempt)))
      }
    }
  }
  return {
    outcomes,
    authMatrix: {
      operations: secured.length,
      kinds: callers.badCredentials.length,
      refused: authTotal - misses.length,
      total: authTotal,
      misses,
    },
  }
}

async function answerWithin(
  pending: Promise<Answer>,
  timeoutMs: number,
): Promise<Answer | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs)
  })
  try {
    return await Promise.race([pending, timeout])
  } finally {
    clearTimeout(timer)
  }
}
