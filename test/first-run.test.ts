import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SERVICES_MODE } from './helpers.js'
import { descendants, freePort, isRunning, runProcess } from './processes.js'

/**
 * The first run as the README tells it: `npm start` on a fresh data directory, then the
 * mistakes a newcomer makes next to it. Embedded mode only: the data directory lock and the
 * "stop the server first" advice are embedded-mode behaviour.
 */
const root = mkdtempSync(join(tmpdir(), 'orderflow-first-run-'))
const dataDir = join(root, 'data')
const lockFile = join(dataDir, 'pgdata.lock')

const baseEnv = {
  ...process.env,
  NODE_ENV: 'test',
  LOG_LEVEL: 'info',
  DATABASE_URL: '',
  REDIS_URL: '',
  ADMIN_EMAIL: '',
  ADMIN_PASSWORD: '',
  MODELS_REGISTER_SHIPPED: 'false',
}

const run = (command: string, args: string[], env: Record<string, string>) =>
  runProcess(command, args, { env: { ...baseEnv, ...env } })

const node = (script: string, args: string[], env: Record<string, string>) =>
  run(process.execPath, ['--import', 'tsx', script, ...args], env)

let port: number
let npm: ChildProcess
let npmExit: Promise<number | null>
let stdout = ''
let stderr = ''

beforeAll(async () => {
  if (SERVICES_MODE) return
  port = await freePort()
  npm = spawn('npm', ['start', '--silent'], {
    env: { ...baseEnv, PORT: String(port), DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  npmExit = new Promise((resolve) => npm.on('exit', (code) => resolve(code)))
  npm.stdout?.on('data', (chunk) => {
    stdout += chunk
  })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${stderr}`)), 60_000)
    npm.stderr?.on('data', (chunk) => {
      stderr += chunk
      if (stderr.includes('OrderFlow is listening')) {
        clearTimeout(timer)
        resolve()
      }
    })
    npm.on('exit', () => reject(new Error(`server exited early:\n${stdout}\n${stderr}`)))
  })
})

afterAll(() => {
  if (npm && npm.exitCode === null) npm.kill('SIGKILL')
  rmSync(root, { recursive: true, force: true })
})

describe.skipIf(SERVICES_MODE)('first run with npm start', { timeout: 120_000 }, () => {
  it('when the server is listening, then it prints the API, /docs and /redoc URLs on stderr and keeps stdout JSON', () => {
    const base = `http://127.0.0.1:${port}`
    expect(stderr).toContain(
      `OrderFlow is listening: API at ${base}/v1, docs at ${base}/docs and ${base}/redoc.`,
    )
    const lines = stdout.trim().split('\n')
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow()
  })

  it('when no active admin exists, then the start message says how to create one', () => {
    expect(stderr).toContain('No admin yet: restart with ADMIN_EMAIL and ADMIN_PASSWORD set')
    expect(stderr).toContain('stop the server and run `npm run cli -- create-admin --email')
  })

  it('when the port is taken, then a second server says so in one line and exits 1 before touching its data directory', async () => {
    const otherDir = join(root, 'other')
    const second = await node('src/server.ts', [], { PORT: String(port), DATA_DIR: otherDir })
    expect(second.code).toBe(1)
    expect(second.stderr.trim()).toBe(
      `port ${port} on 127.0.0.1 is in use; set PORT to a free port, or stop what holds it.`,
    )
    expect(existsSync(otherDir)).toBe(false)
  })

  it('when the server holds the data directory, then a second server on another port refuses naming its pid', async () => {
    const holder = Number(readFileSync(lockFile, 'utf8'))
    expect(descendants(npm.pid as number)).toContain(holder)
    const second = await node('src/server.ts', [], {
      PORT: String(await freePort()),
      DATA_DIR: dataDir,
    })
    expect(second.code).toBe(1)
    expect(second.stderr).toContain(`The data directory is in use by process ${holder}`)
    expect(second.stderr).not.toMatch(/\n\s+at /)
  })

  it('when the server holds the data directory, then create-admin refuses and creates nobody', async () => {
    const holder = Number(readFileSync(lockFile, 'utf8'))
    const cli = await node('src/cli.ts', ['create-admin', '--email', 'late@example.com'], {
      DATA_DIR: dataDir,
      ADMIN_PASSWORD: 'a long enough password',
    })
    expect(cli.code).toBe(1)
    expect(cli.stdout).not.toContain('Created admin')
    expect(cli.stderr).toContain(`in use by process ${holder}`)
  })

  it("when the README's token one-liner meets a failed login, then it fails loudly with the problem's detail", async () => {
    const readme = readFileSync('README.md', 'utf8')
    const snippet = /TOKEN=\$\(curl[\s\S]*?'\)\n/.exec(readme)?.[0] as string
    expect(snippet).toBeDefined()
    const login = await run(
      'bash',
      ['-c', snippet.replaceAll('127.0.0.1:8000', `127.0.0.1:${port}`)],
      {},
    )
    expect(login.code).not.toBe(0)
    expect(login.stderr.trim()).toMatch(/^login failed: \S/)
    expect(login.stderr).not.toContain('undefined')
  })

  it('when npm start gets SIGTERM, then it shuts down gracefully and every process it started is gone', async () => {
    const started = descendants(npm.pid as number)
    expect(started.length).toBeGreaterThan(0)
    npm.kill('SIGTERM')
    expect(await npmExit).toBe(0)
    for (let waited = 0; waited < 10_000 && started.some(isRunning); waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(started.filter(isRunning)).toEqual([])
    expect(stdout).toContain('"msg":"shutting down"')
    expect(existsSync(lockFile)).toBe(false)
  })
})
