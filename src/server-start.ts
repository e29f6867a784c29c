import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import type { Config } from './config.js'
import { OperatorError } from './shared/operator-error.js'

export class PortInUseError extends OperatorError {
  constructor(host: string, port: number) {
    super(`port ${port} on ${host} is in use; set PORT to a free port, or stop what holds it.`)
    this.name = 'PortInUseError'
  }
}

/**
 * Binds the port for a moment before anything slow (migrations, models) starts, so a busy
 * port fails in milliseconds. The listen itself still reports EADDRINUSE should another
 * process take the port in between.
 */
export async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return
  await new Promise<void>((resolve, reject) => {
    const probe = createServer()
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(host, port) : error),
    )
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()))
  })
}

/**
 * The lines a person starting the service reads: where it answers (with how many processes
 * under WEB_CONCURRENCY), and how to get an admin when there is none. The JSON logs stay as
 * they are, for machines.
 */
export function startBanner(
  config: Pick<Config, 'HOST' | 'DOCS_ENABLED' | 'DATABASE_URL'>,
  address: AddressInfo,
  hasActiveAdmin: boolean,
  processes = 1,
): string {
  const base = `http://${displayHost(config.HOST)}:${address.port}`
  const docs = config.DOCS_ENABLED
    ? `docs at ${base}/docs and ${base}/redoc`
    : 'docs off (DOCS_ENABLED=false)'
  const where = processes > 1 ? ` (${processes} server processes)` : ''
  const lines = [`OrderFlow is listening${where}: API at ${base}/v1, ${docs}.`]
  if (!hasActiveAdmin) {
    // Embedded mode locks the data directory, so the CLI can only run while the server is down.
    const cli = 'npm run cli -- create-admin --email you@example.com'
    const viaCli = config.DATABASE_URL ? `run \`${cli}\`` : `stop the server and run \`${cli}\``
    lines.push(`No admin yet: restart with ADMIN_EMAIL and ADMIN_PASSWORD set, or ${viaCli}.`)
  }
  return `${lines.join('\n')}\n`
}

function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost'
  return host.includes(':') ? `[${host}]` : host
}
