import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { freePort } from '../processes.js'

/** The repository root, where `dist/` and `deploy/` are. */
export const ROOT = resolve(import.meta.dirname, '../..')

/**
 * The path of a binary the scale tests need, or an error naming the Debian package that
 * brings it (CI installs them; see the README's testing section).
 */
export function requireBinary(name: string, debianPackage: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/bin', '/bin', '/sbin']) {
    const path = join(dir, name)
    if (existsSync(path)) return path
  }
  throw new Error(
    `${name} is not installed; the scale tests need it: apt-get install -y ${debianPackage}`,
  )
}

export function requireBuild(): void {
  if (!existsSync(join(ROOT, 'dist/server.js'))) {
    throw new Error('dist/server.js is missing: run `npm run build` (npm run test:scale does)')
  }
}

/** A process of the stack, with what it wrote kept for the failure message. */
export interface Running {
  child: ChildProcess
  output: () => string
  exited: Promise<number | null>
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export function start(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))),
  )
  return {
    child,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      const code = await exited
      clearTimeout(timer)
      return code
    },
  }
}

/** Polls `url` until it answers `status`, or throws with the process's output. */
export async function waitForHttp(
  url: string,
  process: Running,
  status = 200,
  timeoutMs = 180_000,
) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (process.child.exitCode !== null) {
      throw new Error(
        `${url}: the process exited (${process.child.exitCode}):\n${process.output()}`,
      )
    }
    try {
      const response = await fetch(url)
      await response.arrayBuffer()
      if (response.status === status) return
    } catch {}
    await sleep(200)
  }
  // A process that never came up is not left behind for the next run to trip over.
  await process.stop('SIGKILL')
  throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms:\n${process.output()}`)
}

/** A database of the scale run's own on the server of DATABASE_URL, dropped by `drop`. */
export async function createScaleDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const shared = process.env.DATABASE_URL
  if (!shared || !process.env.REDIS_URL) {
    throw new Error(
      'the scale tests run in services mode: set DATABASE_URL and REDIS_URL (as CI does)',
    )
  }
  const name = `${new URL(shared).pathname.slice(1)}_scale_${process.pid}`.slice(0, 63)
  const admin = new pg.Client({ connectionString: shared })
  await admin.connect()
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    await admin.query(`CREATE DATABASE "${name}"`)
  } finally {
    await admin.end()
  }
  const url = new URL(shared)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: shared })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {})
      await client.end()
    },
  }
}

/** Runs `node dist/cli.js <args>` as the image's migrate and admin commands do. */
export function runDistCli(args: string[], env: NodeJS.ProcessEnv): string {
  return execFileSync(process.execPath, ['dist/cli.js', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
  })
}

export interface Api {
  port: number
  url: string
  process: Running
}

/** `node dist/server.js`, the image's default command, on a loopback port. */
export async function startApi(env: NodeJS.ProcessEnv): Promise<Api> {
  const port = await freePort()
  const running = start(process.execPath, ['dist/server.js'], {
    ...env,
    HOST: '127.0.0.1',
    PORT: String(port),
  })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/ready`, running)
  return { port, url, process: running }
}

/** `node dist/worker.js`, the image's worker command, with /health on a loopback port. */
export async function startWorker(env: NodeJS.ProcessEnv): Promise<Api> {
  const port = await freePort()
  const running = start(process.execPath, ['dist/worker.js'], {
    ...env,
    HOST: '127.0.0.1',
    WORKER_PORT: String(port),
  })
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/health`, running)
  return { port, url, process: running }
}

/** A scratch directory removed by `cleanUp`. */
export function scratch(prefix: string): { dir: string; cleanUp(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanUp: () => rmSync(dir, { recursive: true, force: true }) }
}

/**
 * deploy/nginx/nginx.conf as compose runs it, with only its addresses moved to loopback:
 * the upstream servers become the API ports and `listen 80` a free port.
 */
export async function startNginx(apiPorts: number[], dir: string) {
  const binary = requireBinary('nginx', 'nginx-light')
  const port = await freePort()
  const source = readFileSync(join(ROOT, 'deploy/nginx/nginx.conf'), 'utf8')
  let config = source
    .replace(/^worker_processes .*$/m, 'worker_processes 1;')
    .replace(/^pid .*$/m, `pid ${join(dir, 'nginx.pid')};`)
    .replace(/listen 80;/, `listen 127.0.0.1:${port};`)
  apiPorts.forEach((apiPort, index) => {
    config = config.replace(`server api-${index + 1}:8000`, `server 127.0.0.1:${apiPort}`)
  })
  if (/api-\d:8000|listen 80;/.test(config)) {
    throw new Error('deploy/nginx/nginx.conf changed shape: the scale test cannot template it')
  }
  const path = join(dir, 'nginx.conf')
  writeFileSync(path, config)
  const running = start(binary, ['-p', dir, '-c', path, '-g', 'daemon off;'])
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/nginx-health`, running)
  return { url, process: running }
}

/** Prometheus with the repo's rules, scraping the given API ports every second. */
export async function startPrometheus(apiPorts: number[], dir: string) {
  const binary = requireBinary('prometheus', 'prometheus')
  const port = await freePort()
  const targets = apiPorts.map((apiPort) => `"127.0.0.1:${apiPort}"`).join(', ')
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'rule_files:',
    `  - ${join(ROOT, 'deploy/prometheus/alerts.yml')}`,
    'scrape_configs:',
    '  - job_name: orderflow-api',
    '    static_configs:',
    `      - targets: [${targets}]`,
    '',
  ].join('\n')
  const path = join(dir, 'prometheus.yml')
  writeFileSync(path, config)
  const running = start(binary, [
    `--config.file=${path}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ])
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/-/ready`, running)
  return { url, process: running }
}
