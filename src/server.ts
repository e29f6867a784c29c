import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { followPrimary, reportReady, runPrimary, serverProcessCount } from './cluster.js'
import { type Config, loadConfig } from './config.js'
import { explainConnectionError } from './db/startup-errors.js'
import { startTracing } from './platform/tracing.js'
import { assertPortFree, PortInUseError, startBanner } from './server-start.js'
import { OperatorError } from './shared/operator-error.js'

/**
 * Process entry: configuration, then one server in this process, or (WEB_CONCURRENCY > 1) a
 * primary that runs that many server processes on the same port.
 */
async function main() {
  const config = loadConfig()
  const processes = serverProcessCount(config)
  if (cluster.isWorker) return serve(config)
  await assertPortFree(config.HOST, config.PORT)
  if (processes === 1) return serve(config)
  process.exitCode = await runPrimary(config, processes)
}

/** The app, the listening socket, and a graceful exit. */
async function serve(config: Config) {
  const tracing = await startTracing(config)
  const app = await buildApp(config).catch((error) => {
    throw (config.DATABASE_URL && explainConnectionError(error, config.DATABASE_URL)) || error
  })

  // Set by whichever starts the shutdown first: a signal, an error, or the primary's request.
  let closing = false
  const graceful = closeWithGrace(
    {
      delay: config.SHUTDOWN_GRACE_MS,
      logger: { error: (message: unknown) => app.log.error(message) },
    },
    async ({ signal, err }) => {
      closing = true
      if (err) app.log.error({ err }, 'shutting down after an unhandled error')
      else app.log.info({ signal }, 'shutting down')
      // Readiness goes red first so load balancers stop routing here, then the socket
      // closes, in-flight requests finish, and the pools close in the onClose hooks.
      app.beginShutdown()
      if (config.SHUTDOWN_DRAIN_MS > 0) await sleep(config.SHUTDOWN_DRAIN_MS)
      await app.close()
      await tracing?.shutdown()
    },
  )
  if (cluster.isWorker) {
    followPrimary(() => {
      if (!closing) void graceful.close()
    })
  }

  try {
    await app.listen({ host: config.HOST, port: config.PORT })
  } catch (error) {
    await app.close()
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new PortInUseError(config.HOST, config.PORT)
    }
    throw error
  }
  // A database hiccup here must not stop a server that is up; the hint is then left out.
  const hasAdmin = await app.hasActiveAdmin().catch(() => true)
  const address = app.server.address() as AddressInfo
  // The primary prints the start message once, for all its workers.
  if (cluster.isWorker) return reportReady(address, hasAdmin)
  // On stderr, so that stdout stays one JSON log line per line for log shippers.
  process.stderr.write(startBanner(config, address, hasAdmin))
}

main().catch((error) => {
  // What the operator must fix is said in one line; anything else keeps its stack trace.
  console.error(error instanceof OperatorError ? error.message : error)
  process.exit(1)
})
