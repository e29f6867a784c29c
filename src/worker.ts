import closeWithGrace from 'close-with-grace'
import { loadConfig } from './config.js'
import { startTracing } from './platform/tracing.js'
import { OperatorError } from './shared/operator-error.js'
import { startWorker } from './worker-app.js'

/** Process entry of `npm run worker`: a job worker until SIGTERM or SIGINT. */
async function main() {
  const config = loadConfig()
  const tracing = await startTracing(config)
  const worker = await startWorker(config)
  closeWithGrace(
    {
      // The worker's own grace period, then a moment to close its connections.
      delay: config.WORKER_SHUTDOWN_GRACE_MS + 5000,
      logger: { error: (message: unknown) => worker.log.error(message) },
    },
    async ({ signal, err }) => {
      if (err) worker.log.error({ err }, 'worker shutting down after an unhandled error')
      else worker.log.info({ signal }, 'worker shutting down; running jobs may finish')
      await worker.close()
      await tracing?.shutdown()
      worker.log.info('worker stopped')
    },
  )
}

main().catch((error) => {
  console.error(error instanceof OperatorError ? error.message : error)
  process.exit(1)
})
