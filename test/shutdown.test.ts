import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { SERVICES_MODE, unique } from './helpers.js'

/** The real process, on a real socket: what a container orchestrator sees. */
const dataDir = mkdtempSync(join(tmpdir(), 'orderflow-shutdown-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

interface Server {
  child: ChildProcess
  port: number
  exit: Promise<number | null>
}

function startServer(): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      PORT: '0',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      // Long enough for the test to see readiness red before the listener closes, on a loaded
      // machine too; the wait costs no CPU.
      SHUTDOWN_DRAIN_MS: '3000',
      REGISTRATION_ENABLED: 'true',
      // In services mode the limit counters live in the Redis every test file shares, keyed
      // by the one client address: other files' logins would spend this server's budget.
      LOGIN_RATE_LIMIT_MAX: '100000',
      RATE_LIMIT_MAX: '100000',
      // Nor may it leave active models in the shared database for other files' apps to load.
      MODELS_REGISTER_SHIPPED: 'false',
      DATABASE_URL: SERVICES_MODE ? process.env.DATABASE_URL : '',
      REDIS_URL: SERVICES_MODE ? process.env.REDIS_URL : '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    let output = ''
    // A start (tsx, PGlite, migrations) has taken over 45 s on a loaded CI machine.
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 110_000)
    child.stderr?.on('data', (chunk) => {
      output += chunk
    })
    child.stdout?.on('data', (chunk) => {
      output += chunk
      const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve({ child, port: Number(match[1]), exit })
      }
    })
    child.on('exit', () => reject(new Error(`server exited early:\n${output}`)))
  })
}

/** Sends a request in two halves so that it is still in flight when the signal lands. */
function startSlowPost(port: number, path: string, body: string) {
  const socket = connect(port, '127.0.0.1')
  let answer = ''
  socket.on('data', (chunk) => {
    answer += chunk
  })
  const done = new Promise<string>((resolve) => socket.on('close', () => resolve(answer)))
  const half = Math.floor(body.length / 2)
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body.slice(0, half)}`,
  )
  return { finish: () => socket.write(body.slice(half)), done }
}

// Starts real server processes, which take seconds each on a loaded machine.
describe('graceful shutdown', { timeout: 300_000 }, () => {
  it('on SIGTERM turns readiness red, finishes the request in flight, and exits 0; the account it made survives a restart', async () => {
    const server = await startServer()
    const email = `shutdown-${unique().toLowerCase()}@example.com`
    const password = 'a password long enough'
    const body = JSON.stringify({ email, password, full_name: 'In flight' })
    const slow = startSlowPost(server.port, '/v1/auth/register', body)
    await new Promise((resolve) => setTimeout(resolve, 200))

    server.child.kill('SIGTERM')
    // The signal lands when it lands: readiness is polled until it turns.
    const ready = await vi.waitFor(
      async () => {
        const answer = await fetch(`http://127.0.0.1:${server.port}/ready`)
        expect(answer.status).toBe(503)
        return answer
      },
      { timeout: 2500, interval: 50 },
    )
    expect(((await ready.json()) as { checks: Record<string, string> }).checks.shutdown).toBe(
      'failing',
    )

    slow.finish()
    const answer = await slow.done
    expect(answer).toMatch(/^HTTP\/1\.1 201 /)
    expect(await server.exit).toBe(0)

    const restarted = await startServer()
    try {
      const login = await fetch(`http://127.0.0.1:${restarted.port}/v1/auth/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'password', username: email, password }),
      })
      expect(login.status).toBe(200)
    } finally {
      restarted.child.kill('SIGTERM')
      expect(await restarted.exit).toBe(0)
    }
  })
})
