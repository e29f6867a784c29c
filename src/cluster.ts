import cluster, { type Worker } from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { availableParallelism } from 'node:os'
import { pino } from 'pino'
import type { Config } from './config.js'
import { startBanner } from './server-start.js'
import { OperatorError } from './shared/operator-error.js'

/**
 * WEB_CONCURRENCY server processes sharing one port (node:cluster): a primary that forks,
 * watches and stops workers, each worker a complete server with its own pools and model
 * sessions. Process managers that do this (pm2, throng) would add a daemon or an
 * unmaintained dependency for what node:cluster does in a page, so the page is here.
 */

/** How many server processes WEB_CONCURRENCY asks for; refuses what the mode cannot share. */
export function serverProcessCount(
  config: Pick<Config, 'WEB_CONCURRENCY' | 'DATABASE_URL' | 'REDIS_URL'>,
  cpus: number = availableParallelism(),
): number {
  const count = config.WEB_CONCURRENCY === 'auto' ? cpus : Number(config.WEB_CONCURRENCY)
  if (count === 1) return count
  const asked = `WEB_CONCURRENCY=${config.WEB_CONCURRENCY} asks for ${count} server processes`
  if (!config.DATABASE_URL) {
    throw new OperatorError(
      `${asked}, but embedded mode runs one (PGlite admits one process per data directory): set DATABASE_URL and REDIS_URL for server mode, or WEB_CONCURRENCY=1.`,
    )
  }
  if (!config.REDIS_URL) {
    // Without Redis, rate-limit counters and credential revocations stay inside each process.
    throw new OperatorError(
      `${asked}, but without REDIS_URL each would keep its own rate limits and miss the others' credential revocations: set REDIS_URL, or WEB_CONCURRENCY=1.`,
    )
  }
  return count
}

export interface RestartPolicy {
  /** Wait before replacing a worker that died while serving. */
  baseDelayMs: number
  /** Longest wait, however often replacements fail. */
  maxDelayMs: number
  /** Replacements in a row that may die before listening; one more and the primary gives up. */
  maxStartFailures: number
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
  maxStartFailures: 5,
}

/**
 * Milliseconds before the next replacement, doubling with each replacement in a row that
 * died before listening; null once there were too many, since a database that stays away or
 * a broken release will not fix itself by restarting faster.
 */
export function restartDelay(policy: RestartPolicy, failedStarts: number): number | null {
  if (failedStarts >= policy.maxStartFailures) return null
  return Math.min(policy.baseDelayMs * 2 ** failedStarts, policy.maxDelayMs)
}

interface ReadyMessage {
  type: 'orderflow:ready'
  address: AddressInfo
  hasActiveAdmin: boolean
}

const SHUTDOWN_MESSAGE = { type: 'orderflow:shutdown' } as const

function isReadyMessage(message: unknown): message is ReadyMessage {
  return (message as ReadyMessage | null)?.type === 'orderflow:ready'
}

/** Worker side: tells the primary this process listens, so it can print the start message. */
export function reportReady(address: AddressInfo, hasActiveAdmin: boolean): void {
  const message: ReadyMessage = { type: 'orderflow:ready', address, hasActiveAdmin }
  process.send?.(message)
}

/**
 * Worker side: runs `shutdown` (the graceful one) when the primary asks, or when the primary
 * is gone: an orphan receives no connections any more and would only hold its pools.
 */
export function followPrimary(shutdown: () => void): void {
  process.on('message', (message: unknown) => {
    if ((message as typeof SHUTDOWN_MESSAGE | null)?.type === SHUTDOWN_MESSAGE.type) shutdown()
  })
  process.on('disconnect', shutdown)
}

/**
 * Primary side: forks `processes` workers running this same entry and resolves with the exit
 * code once they are all gone. The first worker starts alone, so migrations, the first admin
 * and the shipped models are set up by one process; the others fork once it listens. A worker
 * that dies while serving is replaced after a backoff; one that dies during the first start,
 * or replacements that keep dying before they listen, stop them all with exit code 1.
 * SIGTERM and SIGINT stop every worker through its own graceful shutdown.
 */
export function runPrimary(
  config: Config,
  processes: number,
  policy: RestartPolicy = DEFAULT_RESTART_POLICY,
): Promise<number> {
  const log = pino({ level: config.LOG_LEVEL }).child({ role: 'primary' })
  let phase: 'starting' | 'running' | 'stopping' = 'starting'
  let exitCode = 0
  let failedStarts = 0
  const ready = new Set<Worker>()
  const restarts = new Set<NodeJS.Timeout>()
  let finish: (code: number) => void = () => {}
  const done = new Promise<number>((resolve) => {
    finish = resolve
  })

  const live = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w)

  function fork(): void {
    const worker = cluster.fork()
    worker.on('message', (message: unknown) => {
      if (!isReadyMessage(message)) return
      ready.add(worker)
      failedStarts = 0
      if (phase !== 'starting') {
        log.info({ pid: worker.process.pid }, 'server process replaced')
      } else if (ready.size === 1) {
        for (let i = 1; i < processes; i++) fork()
      }
      if (phase === 'starting' && ready.size === processes) {
        phase = 'running'
        process.stderr.write(
          startBanner(config, message.address, message.hasActiveAdmin, processes),
        )
      }
    })
  }

  function stop(code: number, reason: Record<string, unknown>): void {
    exitCode = Math.max(exitCode, code)
    if (phase === 'stopping') return
    phase = 'stopping'
    log.info(reason, 'stopping every server process')
    for (const timer of restarts) clearTimeout(timer)
    for (const worker of live()) {
      // One still starting has no graceful shutdown to ask for yet.
      if (ready.has(worker) && worker.isConnected()) worker.send(SHUTDOWN_MESSAGE)
      else worker.process.kill('SIGTERM')
    }
    // The workers' own grace period ends in exit code 1; this only catches a worker that hangs
    // without reaching it.
    const deadline = config.SHUTDOWN_DRAIN_MS + config.SHUTDOWN_GRACE_MS + 5000
    setTimeout(() => {
      for (const worker of live()) worker.process.kill('SIGKILL')
      finish(1)
    }, deadline).unref()
    if (live().length === 0) finish(exitCode)
  }

  cluster.on('exit', (worker, code, signal) => {
    const wasReady = ready.delete(worker)
    const exited = { pid: worker.process.pid, code, signal }
    if (phase === 'stopping') {
      if (wasReady && code !== 0) exitCode = 1
      if (live().length === 0) finish(exitCode)
      return
    }
    if (phase === 'starting') {
      stop(1, { ...exited, reason: 'a server process failed to start' })
      return
    }
    if (!wasReady) failedStarts++
    const delay = restartDelay(policy, failedStarts)
    if (delay === null) {
      stop(1, { ...exited, failed_starts: failedStarts, reason: 'server processes keep failing' })
      return
    }
    log.error({ ...exited, restart_in_ms: delay }, 'server process exited unexpectedly')
    const timer = setTimeout(() => {
      restarts.delete(timer)
      if (phase === 'running') fork()
    }, delay)
    restarts.add(timer)
  })

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => stop(0, { signal }))
  }
  fork()
  return done
}
