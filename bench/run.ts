import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type autocannon from 'autocannon'
import {
  type LoadSettings,
  runScenario,
  type ScenarioResult,
  scenarios,
  seedProducts,
} from './scenarios.js'
import { ensureBuilt, type ServerTarget, startServer, stopAllServers } from './server.js'

const MODES = ['embedded', 'services'] as const
type Mode = (typeof MODES)[number]
const SEED_COUNT = 200
// Unrecorded load before each measurement, so JIT compilation and cold caches stay out of it.
const WARMUP_SECONDS = 1

interface Row extends ScenarioResult {
  mode: Mode
}

interface Options extends LoadSettings {
  modes: Mode[]
}

/** The load running right now, so an interrupt can stop it before the server. */
let activeLoad: autocannon.Instance | undefined
let interrupted = false
const trackLoad = (instance: autocannon.Instance) => {
  activeLoad = instance
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string', default: 'both' },
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '10' },
    },
  })
  const modes: Mode[] =
    values.mode === 'both' ? [...MODES] : MODES.filter((mode) => mode === values.mode)
  if (modes.length === 0) throw new Error(`--mode must be embedded, services or both`)
  return {
    modes,
    durationSeconds: positiveInteger('--duration', values.duration),
    connections: positiveInteger('--connections', values.connections),
  }
}

function positiveInteger(flag: string, value: string): number {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${flag} must be a positive integer`)
  return parsed
}

/** Services mode needs a real Postgres; Redis is optional, as it is for the service itself. */
function servicesTarget(): ServerTarget | string {
  const databaseUrl = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL
  const redisUrl = process.env.BENCH_REDIS_URL || process.env.REDIS_URL
  if (!databaseUrl) return 'neither BENCH_DATABASE_URL nor DATABASE_URL is set'
  return redisUrl ? { databaseUrl, redisUrl } : { databaseUrl }
}

async function benchMode(
  mode: Mode,
  target: ServerTarget,
  load: LoadSettings,
  runId: string,
): Promise<{ rows: Row[]; startupMs: number }> {
  const server = await startServer(target)
  console.error(`${mode}: ready in ${(server.startupMs / 1000).toFixed(1)} s at ${server.baseUrl}`)
  try {
    const ids = await seedProducts(server.baseUrl, runId, SEED_COUNT)
    const rows: Row[] = []
    for (const scenario of scenarios(ids, runId)) {
      const warmup = { ...load, durationSeconds: WARMUP_SECONDS }
      await runScenario(server.baseUrl, scenario, warmup, trackLoad)
      if (interrupted) break
      console.error(`${mode}: ${scenario.name} for ${load.durationSeconds} s`)
      const result = await runScenario(server.baseUrl, scenario, load, trackLoad)
      if (interrupted) break
      rows.push({ mode, ...result })
    }
    return { rows, startupMs: server.startupMs }
  } finally {
    activeLoad = undefined
    await server.stop()
  }
}

function machineFacts() {
  const cpus = os.cpus()
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuCount: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    totalMemoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    node: process.version,
    // The machine may be shared: a high load average says the numbers are noisy.
    loadAverage1m: Number(os.loadavg()[0]?.toFixed(2)),
  }
}

function markdownTable(rows: Row[]): string {
  const lines = [
    '| mode | scenario | req/s (mean) | p50 ms | p99 ms | errors/non-2xx |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ]
  for (const row of rows) {
    lines.push(
      `| ${row.mode} | ${row.scenario} | ${row.requestsPerSecond.toFixed(0)} | ${row.p50Ms} | ${row.p99Ms} | ${row.errors}/${row.non2xx} |`,
    )
  }
  return lines.join('\n')
}

/** A scenario that did not answer 2xx every time must not hide in a column of numbers. */
function problems(rows: Row[]): string[] {
  return rows
    .filter((row) => row.errors > 0 || row.non2xx > 0)
    .map((row) => {
      const codes = Object.entries(row.statusCodes)
        .filter(([code]) => !code.startsWith('2'))
        .map(([code, count]) => `${count}×${code}`)
        .join(', ')
      return `WARNING ${row.mode} ${row.scenario}: ${row.errors} connection errors/timeouts, ${row.non2xx} non-2xx (${codes || 'none'})`
    })
}

async function main() {
  const options = parseOptions(process.argv.slice(2))
  // SKUs must be unique across runs: services mode keeps its rows in a shared database.
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`.toUpperCase()
  const date = new Date().toISOString()
  const machine = machineFacts()
  ensureBuilt()

  const rows: Row[] = []
  const startup: Partial<Record<Mode, number>> = {}
  const skipped: Partial<Record<Mode, string>> = {}
  for (const mode of options.modes) {
    const target = mode === 'embedded' ? {} : servicesTarget()
    if (typeof target === 'string') {
      skipped[mode] = target
      console.error(`${mode}: skipped, ${target}`)
      continue
    }
    const outcome = await benchMode(mode, target, options, runId)
    rows.push(...outcome.rows)
    startup[mode] = Math.round(outcome.startupMs)
  }

  console.log(
    `OrderFlow bench ${date} | ${machine.os} | ${machine.cpuCount} × ${machine.cpuModel} | ` +
      `${machine.totalMemoryGiB} GiB RAM | Node ${machine.node} | load ${machine.loadAverage1m} | ` +
      `${options.connections} connections, ${options.durationSeconds} s per scenario`,
  )
  if (rows.length > 0) console.log(`\n${markdownTable(rows)}`)
  for (const line of problems(rows)) console.log(line)
  for (const [mode, reason] of Object.entries(skipped)) console.log(`${mode} skipped: ${reason}`)

  // Outside the repository, so a run leaves no untracked files behind.
  const resultsDir = join(os.tmpdir(), 'orderflow-bench')
  const resultsPath = join(resultsDir, 'latest.json')
  await mkdir(resultsDir, { recursive: true })
  const report = { date, runId, machine, settings: options, startupMs: startup, skipped, rows }
  await writeFile(resultsPath, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`\nResults written to ${resultsPath}`)
  if (rows.length === 0) process.exitCode = 1
}

async function interrupt(signal: NodeJS.Signals) {
  if (interrupted) return
  interrupted = true
  console.error(`${signal}: stopping the load and the server`)
  activeLoad?.stop()
  await stopAllServers()
  process.exit(130)
}

process.once('SIGINT', interrupt)
process.once('SIGTERM', interrupt)

main().catch(async (error) => {
  console.error(error instanceof Error ? error.message : error)
  await stopAllServers()
  process.exit(1)
})
