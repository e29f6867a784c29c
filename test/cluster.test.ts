import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SERVICES_MODE } from './helpers.js'
import { childrenOf, freePort, isRunning } from './processes.js'

/**
 * WEB_CONCURRENCY on the real entry: a primary and its workers on one port. The cluster
 * needs PostgreSQL and Redis, so it runs in services mode only; the refusal runs in both.
 */
const dataDir = mkdtempSync(join(tmpdir(), 'orderflow-cluster-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

const baseEnv = {
  ...process.env,
  NODE_ENV: 'test',
  LOG_LEVEL: 'info',
  DATA_DIR: dataDir,
  ADMIN_EMAIL: '',
  ADMIN_PASSWORD: '',
  // Nor may it leave active models in the shared database for other files' apps to load.
  MODELS_REGISTER_SHIPPED: 'false',
}

function spawnServer(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...baseEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output = { stdout: '', stderr: '' }
  child.stdout.on('data', (chunk) => {
    output.stdout += chunk
  })
  child.stderr.on('data', (chunk) => {
    output.stderr += chunk
  })
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, output, exit }
}

/** GET on a fresh connection, so that the primary hands each one to the next worker. */
function getFresh(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The pids that logged a completed request: each worker logs with its own pid. */
function answeringPids(stdout: string): Set<number> {
  const pids = new Set<number>()
  for (const line of stdout.split('\n')) {
    if (!line.includes('"msg":"request completed"')) continue
    pids.add(JSON.parse(line).pid)
  }
  return pids
}

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string) {
  for (const start = Date.now(); !(await check()); ) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('WEB_CONCURRENCY in embedded mode', () => {
  it('when embedded mode asks for two processes, then it refuses in one line, exits 1 and leaves the data directory alone', async () => {
    const server = spawnServer({
      DATABASE_URL: '',
      REDIS_URL: '',
      WEB_CONCURRENCY: '2',
      PORT: String(await freePort()),
      DATA_DIR: join(dataDir, 'untouched'),
    })
    expect(await server.exit).toBe(1)
    expect(server.output.stderr.trim().split('\n')).toEqual([
      'WEB_CONCURRENCY=2 asks for 2 server processes, but embedded mode runs one (PGlite admits one process per data directory): set DATABASE_URL and REDIS_URL for server mode, or WEB_CONCURRENCY=1.',
    ])
    expect(existsSync(join(dataDir, 'untouched'))).toBe(false)
  })
})

describe.skipIf(!SERVICES_MODE)('WEB_CONCURRENCY=2 in server mode', () => {
  let server: ReturnType<typeof spawnServer>
  let port: number

  beforeAll(async () => {
    port = await freePort()
    server = spawnServer({
      DATABASE_URL: process.env.DATABASE_URL as string,
      REDIS_URL: process.env.REDIS_URL as string,
      WEB_CONCURRENCY: '2',
      PORT: String(port),
      SHUTDOWN_DRAIN_MS: '200',
    })
    await until(
      () =>
        server.output.stderr.includes('OrderFlow is listening') || server.child.exitCode !== null,
      90_000,
      'the start message',
    )
    if (server.child.exitCode !== null) throw new Error(`server exited:\n${server.output.stderr}`)
  }, 100_000)

  afterAll(() => {
    if (server?.child.exitCode === null) server.child.kill('SIGKILL')
  })

  it('when every worker listens, then the primary prints the start message once, naming two processes', () => {
    const starts = server.output.stderr.match(/OrderFlow is listening/g) ?? []
    expect(starts).toHaveLength(1)
    expect(server.output.stderr).toContain(
      `OrderFlow is listening (2 server processes): API at http://127.0.0.1:${port}/v1`,
    )
  })

  it('when requests arrive on fresh connections, then two worker processes answer them', async () => {
    for (let i = 0; i < 8; i++) expect(await getFresh(port, '/health')).toBe(200)
    // Each worker's log lines reach us through its own pipe, in their own time.
    await until(() => answeringPids(server.output.stdout).size >= 2, 5000, 'two workers logging')
    const workers = childrenOf(server.child.pid as number)
    const answering = answeringPids(server.output.stdout)
    expect(answering.size).toBe(2)
    for (const pid of answering) expect(workers).toContain(pid)
    expect(answering.has(server.child.pid as number)).toBe(false)
  })

  it('when a worker dies, then the primary replaces it and a new pid answers', async () => {
    const [victim] = [...answeringPids(server.output.stdout)]
    process.kill(victim as number, 'SIGKILL')
    await until(
      () => server.output.stdout.includes('"msg":"server process replaced"'),
      60_000,
      'a replacement worker',
    )
    expect(server.output.stdout).toContain('"msg":"server process exited unexpectedly"')
    const before = answeringPids(server.output.stdout)
    await until(
      async () => {
        await getFresh(port, '/health')
        return answeringPids(server.output.stdout).size > before.size
      },
      10_000,
      'the replacement to answer',
    )
    const [replacement] = [...answeringPids(server.output.stdout)].filter((pid) => !before.has(pid))
    expect(isRunning(victim as number)).toBe(false)
    expect(childrenOf(server.child.pid as number)).toContain(replacement)
  }, 90_000)

  it('when the primary gets SIGTERM, then every worker shuts down gracefully and the primary exits 0', async () => {
    const workers = childrenOf(server.child.pid as number).filter((pid) =>
      answeringPids(server.output.stdout).has(pid),
    )
    expect(workers).toHaveLength(2)
    server.child.kill('SIGTERM')
    expect(await server.exit).toBe(0)
    expect(workers.filter(isRunning)).toEqual([])
    const shutdowns = server.output.stdout
      .split('\n')
      .filter((line) => line.includes('"msg":"shutting down"'))
      .map((line) => JSON.parse(line).pid)
    expect(shutdowns.sort()).toEqual([...workers].sort())
  }, 30_000)
})
