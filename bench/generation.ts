/**
 * Text generation with the shipped tiny-text model: time to first token and generated
 * tokens per second, one stream alone and several at once (their steps share micro-batches).
 * The server runs in its own process, embedded mode, on a fresh data directory; the client
 * reads the event stream over HTTP as a browser would.
 *
 *   npm run bench:generate -- --duration 3 --streams 8
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const ADMIN = { username: 'bench@example.com', password: 'bench password, long enough' }
const MAX_TOKENS = 64

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function waitReady(baseUrl: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`)
    const ready = await fetch(`${baseUrl}/ready`).then(
      (response) => response.ok,
      () => false,
    )
    if (ready) return
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error('the server did not get ready')
}

/** One streamed generation: when its first token came and how many it produced. */
async function streamOnce(baseUrl: string, token: string, seed: number) {
  const started = performance.now()
  const response = await fetch(`${baseUrl}/v1/models/tiny-text/generate`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'text/event-stream',
    },
    body: JSON.stringify({ prompt: 'On Monday, ', max_tokens: MAX_TOKENS, seed }),
  })
  if (!response.ok || !response.body) throw new Error(`generate answered ${response.status}`)
  let firstTokenMs: number | undefined
  let tokens = 0
  const decoder = new TextDecoder()
  for await (const chunk of response.body) {
    const text = decoder.decode(chunk, { stream: true })
    const count = text.split('event: token').length - 1
    if (count > 0 && firstTokenMs === undefined) firstTokenMs = performance.now() - started
    tokens += count
  }
  return { firstTokenMs: firstTokenMs ?? Number.NaN, tokens, totalMs: performance.now() - started }
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

/** Streams back to back on `streams` concurrent clients for `seconds`. */
async function load(baseUrl: string, token: string, streams: number, seconds: number) {
  const until = performance.now() + seconds * 1000
  const started = performance.now()
  const firsts: number[] = []
  let tokens = 0
  let seed = 0
  await Promise.all(
    Array.from({ length: streams }, async () => {
      while (performance.now() < until) {
        const run = await streamOnce(baseUrl, token, seed++)
        firsts.push(run.firstTokenMs)
        tokens += run.tokens
      }
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  return {
    streams,
    tokensPerSecond: tokens / elapsed,
    ttftP50Ms: percentile(firsts, 50),
    ttftP99Ms: percentile(firsts, 99),
    generations: firsts.length,
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '3' },
      streams: { type: 'string', default: '8' },
    },
  })
  const seconds = Number(values.duration)
  const streams = Number(values.streams)
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-bench-generate-'))
  const port = await freePort()
  const baseUrl = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: {
      ...process.env,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      PORT: String(port),
      DATA_DIR: dataDir,
      DATABASE_URL: '',
      REDIS_URL: '',
      ADMIN_EMAIL: ADMIN.username,
      ADMIN_PASSWORD: ADMIN.password,
      PREDICT_RATE_LIMIT_MAX: '1000000',
      RATE_LIMIT_MAX: '1000000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  try {
    await waitReady(baseUrl, child)
    const login = await fetch(`${baseUrl}/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', ...ADMIN }).toString(),
    })
    const { access_token: token } = (await login.json()) as { access_token: string }
    await streamOnce(baseUrl, token, 0)
    const rows = [
      await load(baseUrl, token, 1, seconds),
      await load(baseUrl, token, streams, seconds),
    ]
    console.log(`tiny-text, ${MAX_TOKENS} tokens per generation, ${seconds} s per row`)
    console.log(
      '| streams | tokens/s (all streams) | time to first token p50 | p99 | generations |',
    )
    console.log('| ---: | ---: | ---: | ---: | ---: |')
    for (const row of rows) {
      console.log(
        `| ${row.streams} | ${row.tokensPerSecond.toFixed(0)} | ${row.ttftP50Ms.toFixed(1)} ms | ${row.ttftP99Ms.toFixed(1)} ms | ${row.generations} |`,
      )
    }
  } finally {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
    await rm(dataDir, { recursive: true, force: true })
  }
}

await main()
