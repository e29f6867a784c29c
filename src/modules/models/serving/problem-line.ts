import { STATUS_CODES } from 'node:http'
import { problemType, toProblem } from '../../../platform/problem.js'

/**
 * A problem document for a channel that has no status line of its own: an NDJSON line
 * written after the 200, or a WebSocket message. Same members and codes as an HTTP problem,
 * and, as there, a 5xx never carries the error's own message.
 */
export function problemLine(error: unknown, extra: Record<string, unknown> = {}) {
  const problem = toProblem(error instanceof Error ? error : new Error(String(error)))
  return {
    type: problemType(problem.code),
    title: STATUS_CODES[problem.status] ?? 'Error',
    status: problem.status,
    detail: problem.detail,
    code: problem.code,
    ...problem.extensions,
    ...(problem.retryAfterSeconds !== undefined
      ? { retry_after_s: problem.retryAfterSeconds }
      : {}),
    ...extra,
  }
}
