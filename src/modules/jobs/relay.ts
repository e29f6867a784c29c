import type { FastifyBaseLogger } from 'fastify'
import type { JobRepository, RelayedJob } from './repository.js'

export type Deliver = (rows: RelayedJob[]) => Promise<void>

export interface OutboxRelayDeps {
  jobs: Pick<JobRepository, 'relayOutbox'>
  deliver: Deliver
  log: FastifyBaseLogger
  intervalMs: number
  batchSize?: number
}

/**
 * The transactional outbox's relay: hands committed jobs that no queue has yet to the queue.
 * Any number of relays may run (every API instance and worker runs one): the rows are
 * claimed with FOR UPDATE SKIP LOCKED, and the queue's job id is the row's id, so a relay
 * that dies after enqueueing but before its commit only makes the next one enqueue the
 * same id again, which the queue ignores.
 */
export function createOutboxRelay({
  jobs,
  deliver,
  log,
  intervalMs,
  batchSize = 100,
}: OutboxRelayDeps) {
  let timer: NodeJS.Timeout | undefined
  let pass: Promise<void> | null = null
  let again = false

  async function drain() {
    try {
      while ((await jobs.relayOutbox(batchSize, deliver)) === batchSize) {}
    } catch (error) {
      log.warn({ err: error }, 'outbox relay pass failed; retrying at the next pass')
    }
  }

  function run(): Promise<void> {
    if (pass) {
      again = true
      return pass
    }
    pass = drain().finally(() => {
      pass = null
      if (again) {
        again = false
        void run()
      }
    })
    return pass
  }

  return {
    start() {
      timer = setInterval(() => void run(), intervalMs)
      timer.unref()
      void run()
    },
    /** Relays now rather than at the next pass; resolves when this pass is done. */
    wake: run,
    async stop() {
      clearInterval(timer)
      await pass
    },
  }
}

export type OutboxRelay = ReturnType<typeof createOutboxRelay>
