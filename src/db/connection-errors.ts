/**
 * Errors that mean "the database cannot be reached right now", as opposed to a query it
 * refused: the request may succeed if retried shortly, so it answers 503 with Retry-After.
 */

/** Socket errors from the operating system while connecting or talking to the server. */
export const SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
])

/**
 * SQLSTATEs of a server going away or refusing connections: class 08 (connection exception),
 * 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now) and 53300 (too many
 * connections).
 */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300'])

/**
 * node-postgres raises these without a code, so only their messages tell them apart: a
 * connection lost under a query, and a pool or client connect that timed out.
 */
const DRIVER_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect$/,
  /^Client has encountered a connection error and is not queryable$/,
]

function isUnavailable(error: Error & { code?: unknown }): boolean {
  const code = typeof error.code === 'string' ? error.code : undefined
  if (code && (SOCKET_CODES.has(code) || UNAVAILABLE_STATES.has(code) || code.startsWith('08')))
    return true
  return DRIVER_MESSAGES.some((pattern) => pattern.test(error.message))
}

/** True when `error`, or an error it wraps (Drizzle wraps driver errors), is one of those. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error; current instanceof Error; current = current.cause) {
    if (isUnavailable(current)) return true
  }
  return false
}
