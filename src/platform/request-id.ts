import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * Keeps a caller's X-Request-ID when it is short and plain, so traces join across
 * services; anything else (log injection, megabyte headers) is replaced by a fresh UUID.
 */
export function generateRequestId(request: IncomingMessage): string {
  const incoming = request.headers['x-request-id']
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID()
}
