import { execFile, execFileSync, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { freePort } from '../processes.js'

/**
 * Private PostgreSQL and Redis servers for tests that stop, kill and freeze them: never the
 * shared ones. Each lives in a temporary directory on a free port and is torn down after.
 */

const run = promisify(execFile)

export interface PrivateRedis {
  url: string
  /** SIGSTOP: the socket stays open and nothing answers, like a stalled host. */
  freeze(): void
  thaw(): void
  /** Stops the server (connections are refused from then on). */
  stop(): Promise<void>
  start(): Promise<void>
  close(): Promise<void>
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'orderflow-redis-'))
  let child: ReturnType<typeof spawn> | undefined

  async function start() {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { cwd: dir, stdio: 'ignore' },
    )
    await waitFor(() => run('redis-cli', ['-p', String(port), 'ping']), 'redis-server')
  }
  async function stop() {
    const stopping = child
    if (!stopping || stopping.exitCode !== null) return
    const exited = new Promise((resolve) => stopping.once('exit', resolve))
    stopping.kill('SIGCONT')
    stopping.kill('SIGKILL')
    await exited
  }

  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
    stop,
    start,
    async close() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface PrivatePostgres {
  url: string
  /** `pg_ctl stop -m immediate`: every backend dies at once, mid-transaction or not. */
  stopImmediately(): Promise<void>
  start(): Promise<void>
  close(): Promise<void>
}

/**
 * A throwaway cluster from the installed PostgreSQL binaries (`pg_config --bindir`), trusting
 * local connections. initdb refuses to run as root, so as root it runs as `postgres`.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bindir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim()
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'orderflow-pg-'))
  const data = join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    chmodSync(dir, 0o777)
    execFileSync('chown', ['postgres', dir])
  }
  const pgTool = (tool: string, args: string[]) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', join(bindir, tool), ...args], { cwd: dir })
      : run(join(bindir, tool), args, { cwd: dir })

  await pgTool('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync'])
  const start = async () => {
    await pgTool('pg_ctl', [
      'start',
      '-D',
      data,
      '-w',
      '-l',
      join(dir, 'log'),
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
    ])
  }
  await start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stopImmediately() {
      await pgTool('pg_ctl', ['stop', '-D', data, '-m', 'immediate'])
    },
    start,
    async close() {
      await pgTool('pg_ctl', ['stop', '-D', data, '-m', 'immediate']).catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function waitFor(check: () => Promise<unknown>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what} did not start: ${error}`)
      await sleep(50)
    }
  }
}
