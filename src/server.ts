import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

/** Process entry: configuration, the app, the listening socket, and a graceful exit. */
async function main() {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(error.message)
    process.exit(1)
  }

  const app = await buildApp(config)

  closeWithGrace(
    {
      delay: config.SHUTDOWN_GRACE_MS,
      logger: { error: (message: unknown) => app.log.error(message) },
    },
    async ({ signal, err }) => {
      if (err) app.log.error({ err }, 'shutting down after an unhandled error')
      else app.log.info({ signal }, 'shutting down')
      // Readiness goes red first so load balancers stop routing here, then the socket
      // closes, in-flight requests finish, and the pools close in the onClose hooks.
      app.beginShutdown()
      if (config.SHUTDOWN_DRAIN_MS > 0) await sleep(config.SHUTDOWN_DRAIN_MS)
      await app.close()
    },
  )

  await app.listen({ host: config.HOST, port: config.PORT })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
