import { OperatorError } from '../shared/operator-error.js'
import { SOCKET_CODES } from './connection-errors.js'

/**
 * Turns the failures of a first connection to PostgreSQL into one line an operator can act
 * on, instead of a driver error with a dozen fields. Anything else is left as it is.
 * The password in the URL is never part of the message.
 */
export function explainConnectionError(error: unknown, databaseUrl: string): Error | undefined {
  // Drizzle wraps the driver's error in one of its own, with the original as `cause`.
  const driverError = error instanceof Error && error.cause instanceof Error ? error.cause : error
  return explain(driverError, databaseUrl)
}

function explain(error: unknown, databaseUrl: string): Error | undefined {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return timedOut(error) ? unreachable(databaseUrl) : undefined
  const target = describe(databaseUrl)
  if (code === '3D000') {
    return new OperatorError(
      `PostgreSQL database "${target.database}" does not exist on ${target.server}. Create it ` +
        `with \`createdb -h ${target.host} -p ${target.port} -U ${target.user} ${target.database}\`, ` +
        'or point DATABASE_URL at an existing database.',
    )
  }
  if (code === '28P01' || code === '28000') {
    return new OperatorError(
      `PostgreSQL on ${target.server} refused user "${target.user}" (wrong password or no access ` +
        'rule for it): check the credentials in DATABASE_URL.',
    )
  }
  if (SOCKET_CODES.has(code)) return unreachable(databaseUrl, code)
  return undefined
}

function unreachable(databaseUrl: string, code?: string) {
  const { server } = describe(databaseUrl)
  return new OperatorError(
    `Cannot reach PostgreSQL on ${server}${code ? ` (${code})` : ''}: start it, or correct the ` +
      'host and port in DATABASE_URL.',
  )
}

/** pg's wording when DATABASE_CONNECT_TIMEOUT_MS runs out before the server answers. */
function timedOut(error: unknown): boolean {
  return error instanceof Error && /connection timeout|timeout expired/i.test(error.message)
}

function describe(databaseUrl: string) {
  const url = new URL(databaseUrl)
  const host = decodeURIComponent(url.hostname) || 'localhost'
  const port = url.port || '5432'
  return {
    host,
    port,
    server: `${host}:${port}`,
    user: decodeURIComponent(url.username) || 'postgres',
    database: decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username),
  }
}
