import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, existsSync, openSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BUILD = join(ROOT, 'dist', 'app.js')
const ENTRY = join(ROOT, 'bench', 'server-entry.ts')
const HOST = '127.0.0.1'
const READY_TIMEOUT_MS = 60_000
// Above the server's default SHUTDOWN_GRACE_MS (10 s), so a graceful close gets its chance.
const STOP_TIMEOUT_MS = 15_000

// Limits lifted so they never answer in place of the service: a bench caller sends far more
// than 600 requests a minute, 10 logins, or the predict limit. The limiters still count every
// request.
const UNLIMITED = String(1_000_000_000)

/** Who resolves callers; every server is built by bench/server-entry.ts with one of these. */
export type AuthMode = 'on' | 'off' | 'jwt-only'

/** Every server spawned and not yet stopped, including those still starting up. */
const running = new Set<() => Promise<void>>()

export interface ServerTarget {
  /** Unset runs the embedded database in DATA_DIR. */
  databaseUrl?: string
  redisUrl?: string
  /** A DATA_DIR prepared (seeded) by the caller, who also removes it; unset gets a throwaway one. */
  dataDir?: string
}

export interface ServerSettings {
  auth: AuthMode
  /** Created at start (ADMIN_EMAIL / ADMIN_PASSWORD) when the database has no admin yet. */
  admin: { email: string; password: string }
  /** Shared by every server of a run, so the jwt-only baseline accepts the real tokens. */
  jwtSecret: string
  /** Settings that set this server apart from its neighbours, e.g. batching off. */
  env?: Record<string, string>
  /**
   * Where the server's log (its stdout) goes, as a deployed server's goes to a file or a
   * log collector. Without it the level is `warn` and what little is written passes through
   * the bench's stderr; relaying a line per request through this process would take CPU
   * from the load generator and measure the pipe, not the service.
   */
  logFile?: string
}

export interface RunningServer {
  baseUrl: string
  /** Time from spawn to the first 200 from /ready. */
  startupMs: number
  stop(): Promise<void>
}

/** Builds only when there is no build: the bench measures what is in dist/, as deployed. */
export function ensureBuilt(): void {
  if (existsSync(BUILD)) return
  console.error('dist/app.js missing; building with npm run build:server')
  const result = spawnSync('npm', ['run', 'build:server'], {
    cwd: ROOT,
    stdio: 'inherit',
  })
  if (result.status !== 0) throw new Error(`build failed (exit ${result.status ?? result.signal})`)
}

export async function startServer(
  target: ServerTarget,
  settings: ServerSettings,
): Promise<RunningServer> {
  const port = await freePort()
  const dataDir = target.dataDir ?? (await makeDataDir())
  const logFd = settings.logFile === undefined ? undefined : openSync(settings.logFile, 'a')
  // tsx loads the entry only; the app it imports from dist/ is plain JavaScript.
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, '--auth', settings.auth], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST,
      PORT: String(port),
      LOG_LEVEL: logFd === undefined ? 'warn' : 'info',
      NODE_ENV: 'production',
      DATA_DIR: dataDir,
      JWT_SECRET: settings.jwtSecret,
      ADMIN_EMAIL: settings.admin.email,
      ADMIN_PASSWORD: settings.admin.password,
      RATE_LIMIT_MAX: UNLIMITED,
      LOGIN_RATE_LIMIT_MAX: UNLIMITED,
      PREDICT_RATE_LIMIT_MAX: UNLIMITED,
      // An empty value means "unset" to the config loader and, unlike deleting the key,
      // also overrides a DATABASE_URL / REDIS_URL that a local .env may carry.
      DATABASE_URL: target.databaseUrl ?? '',
      REDIS_URL: target.redisUrl ?? '',
      ...settings.env,
    },
    // Its own process group: a Ctrl-C reaches only us, and we send the one SIGTERM. The
    // server treats a second signal as "exit now", which would skip its graceful close.
    detached: true,
    // Server logs go to stderr (or the log file) so stdout carries only the results.
    stdio: ['ignore', logFd ?? 'pipe', 'pipe'],
  })
  // The child holds its own copy of the descriptor.
  if (logFd !== undefined) closeSync(logFd)
  return supervise(child, port, '/ready', () =>
    target.dataDir ? undefined : removeDataDir(dataDir),
  )
}

/**
 * A reference server of bench/ceilings/, in the same process tree as the service and
 * stopped with it. Ready when its GET /health answers 200; `env` is its configuration.
 */
export async function startCeiling(
  script: string,
  env: Record<string, string> = {},
): Promise<RunningServer> {
  const port = await freePort()
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'bench', 'ceilings', script)],
    {
      cwd: ROOT,
      env: { ...process.env, HOST, PORT: String(port), NODE_ENV: 'production', ...env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  return supervise(child, port, '/health')
}

/** Registers the child for `stopAllServers`, waits until `readyPath` answers 200. */
async function supervise(
  child: ChildProcess,
  port: number,
  readyPath: string,
  afterStop: () => Promise<void> | undefined = () => undefined,
): Promise<RunningServer> {
  child.stdout?.pipe(process.stderr)
  child.stderr?.pipe(process.stderr)
  let stopping: Promise<void> | undefined
  const stop = () => {
    running.delete(stop)
    stopping ??= stopChild(child).finally(afterStop)
    return stopping
  }
  running.add(stop)

  const baseUrl = `http://${HOST}:${port}`
  const startedAt = performance.now()
  try {
    await waitUntilReady(`${baseUrl}${readyPath}`, child)
  } catch (error) {
    await stop()
    throw error
  }
  return { baseUrl, startupMs: performance.now() - startedAt, stop }
}

/** A throwaway DATA_DIR for an embedded database. */
export function makeDataDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'orderflow-bench-'))
}

export function removeDataDir(dataDir: string): Promise<void> {
  return rm(dataDir, { recursive: true, force: true })
}

/** For an interrupt: the child runs in its own process group and would outlive us. */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...running].map((stop) => stop()))
}

/** Asks the OS for a port nobody holds; the tiny race until the server binds it is accepted. */
export async function freePort(): Promise<number> {
  const probe = createServer()
  probe.listen(0, HOST)
  await once(probe, 'listening')
  const address = probe.address()
  probe.close()
  if (address === null || typeof address === 'string') throw new Error('no TCP port assigned')
  return address.port
}

async function waitUntilReady(readyUrl: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let lastProblem = 'no answer yet'
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited during startup (${child.exitCode ?? child.signalCode})`)
    }
    try {
      const response = await fetch(readyUrl, { signal: AbortSignal.timeout(2_000) })
      if (response.status === 200) return
      lastProblem = `${readyUrl} answered ${response.status}: ${await response.text()}`
    } catch (error) {
      lastProblem = error instanceof Error ? error.message : String(error)
    }
    await sleep(250)
  }
  throw new Error(`server not ready after ${READY_TIMEOUT_MS / 1000} s (${lastProblem})`)
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  try {
    await exited
  } finally {
    clearTimeout(timer)
  }
}
