/**
 * The startup suite: how long the service takes from `npm run start:dist` to its first 200
 * from /ready, and how much memory it holds once idle, beside the targets of issue 12.
 *
 *   first start     embedded only: an empty data directory, so initdb, every migration and
 *                   the shipped models' registration run (server mode keeps its database)
 *   existing data   the same data directory (or database) again: what a restart costs
 *
 * Each figure is the median of `runs` starts, measured one at a time. Beside the wall time it
 * prints the CPU time the server used until ready (all its threads), which a loaded machine
 * stretches far less than the wall time. Idle RSS is read IDLE_SETTLE_MS after ready.
 * Reads /proc: Linux only.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { freePort, makeDataDir, removeDataDir, type ServerTarget } from './server.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const HOST = '127.0.0.1'
const POLL_MS = 20
const READY_TIMEOUT_MS = 300_000
const IDLE_SETTLE_MS = 3_000
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100

export const STARTUP_TARGETS = {
  readyMs: 1_500,
  rssMb: { embedded: 200, services: 130 } as Record<string, number>,
}

export interface StartupResult {
  mode: string
  start: 'first start' | 'existing data'
  runs: number
  readyMs: number
  cpuMs: number
  rssMb: number
}

interface OneStart {
  readyMs: number
  cpuMs: number
  rssMb: number
}

export async function benchStartup(options: {
  mode: string
  target: ServerTarget
  runs: number
  log: (line: string) => void
}): Promise<StartupResult[]> {
  const { mode, target, runs, log } = options
  const dataDir = await makeDataDir()
  try {
    const results: StartupResult[] = []
    const env = {
      DATABASE_URL: target.databaseUrl ?? '',
      REDIS_URL: target.redisUrl ?? '',
      DATA_DIR: dataDir,
    }
    if (!target.databaseUrl) {
      log(`${mode}: first start on an empty data directory`)
      // The first start creates the data directory, so only one of it per run.
      results.push(summarise(mode, 'first start', [await startOnce(env)]))
    } else {
      // Makes sure the database is migrated, so that every measured start finds it so.
      await startOnce(env)
    }
    const starts: OneStart[] = []
    for (let run = 0; run < runs; run++) {
      log(`${mode}: start ${run + 1} of ${runs} with existing data`)
      starts.push(await startOnce(env))
    }
    results.push(summarise(mode, 'existing data', starts))
    return results
  } finally {
    await removeDataDir(dataDir)
  }
}

function summarise(mode: string, start: StartupResult['start'], starts: OneStart[]) {
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b)
    return sorted[Math.floor((sorted.length - 1) / 2)] as number
  }
  return {
    mode,
    start,
    runs: starts.length,
    readyMs: median(starts.map((each) => each.readyMs)),
    cpuMs: median(starts.map((each) => each.cpuMs)),
    rssMb: median(starts.map((each) => each.rssMb)),
  }
}

/** `npm run start:dist`, as an operator starts the build, until /ready answers 200. */
async function startOnce(env: Record<string, string>): Promise<OneStart> {
  const port = await freePort()
  const startedAt = performance.now()
  const npm = spawn('npm', ['run', '--silent', 'start:dist'], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...env,
      HOST,
      PORT: String(port),
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      // Not a secret: production refuses the default, and this server lives for seconds.
      JWT_SECRET: 'startup-bench-jwt-secret-0123456789abcdef',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  npm.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  try {
    await waitUntilReady(`http://${HOST}:${port}/ready`, npm, () => stderr)
    const readyMs = performance.now() - startedAt
    // start:dist execs node in npm's shell, so the server is npm's one child.
    const server = await serverPid(npm)
    const cpuMs = await cpuTimeMs(server)
    await sleep(IDLE_SETTLE_MS)
    return { readyMs, cpuMs, rssMb: await rssMb(server) }
  } finally {
    await stop(npm)
  }
}

async function waitUntilReady(url: string, child: ChildProcess, output: () => string) {
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited during start:\n${output()}`)
    const ready = await fetch(url, { signal: AbortSignal.timeout(1_000) }).then(
      (response) => response.status === 200,
      () => false,
    )
    if (ready) return
    await sleep(POLL_MS)
  }
  throw new Error(`server not ready after ${READY_TIMEOUT_MS / 1000} s:\n${output()}`)
}

async function serverPid(npm: ChildProcess): Promise<number> {
  const children = await readFile(`/proc/${npm.pid}/task/${npm.pid}/children`, 'utf8')
  const [pid] = children.trim().split(/\s+/).map(Number)
  if (!pid) throw new Error('npm has no child process')
  return pid
}

async function cpuTimeMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12]) // utime, stime
  return (ticks * 1000) / TICKS_PER_SECOND
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1])
  return kb / 1024
}

async function stop(npm: ChildProcess) {
  if (npm.exitCode !== null) return
  const exited = once(npm, 'exit')
  // npm passes SIGTERM on to the server, which closes gracefully.
  npm.kill('SIGTERM')
  const timer = setTimeout(() => npm.kill('SIGKILL'), 15_000)
  try {
    await exited
  } finally {
    clearTimeout(timer)
  }
}

/** The figures beside their targets. */
export function startupTable(results: readonly StartupResult[]): string {
  const lines = [
    '| mode | start | runs | start to ready ms (median) | CPU ms to ready | idle RSS MB | targets |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- |',
  ]
  for (const { mode, start, runs, readyMs, cpuMs, rssMb } of results) {
    const ready = start === 'existing data' ? `ready ≤ ${STARTUP_TARGETS.readyMs} ms, ` : ''
    lines.push(
      `| ${mode} | ${start} | ${runs} | ${readyMs.toFixed(0)} | ${cpuMs.toFixed(0)} | ` +
        `${rssMb.toFixed(0)} | ${ready}RSS ≤ ${STARTUP_TARGETS.rssMb[mode]} MB |`,
    )
  }
  return lines.join('\n')
}
