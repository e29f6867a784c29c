/**
 * WebSocket predictions beside HTTP ones, and the prediction log's cost, in one run on
 * embedded servers: `npx tsx bench/serving-extras.ts --duration 3`. Scenarios take turns in
 * one-second slices, so each ratio compares the same moments of a noisy machine.
 */
import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import WebSocket from 'ws'
import { irisInputs, irisRows } from './iris-data.js'
import { bearer, logIn } from './scenarios.js'
import { ensureBuilt, type RunningServer, startServer, stopAllServers } from './server.js'

const ADMIN = { username: 'bench-admin@orderflow.test', password: 'bench-admin-pass' }
const SOCKETS = 16
const SLICE_S = 1

const COMMON = {
  MODELS_REGISTER_SHIPPED: 'true',
  MODEL_BATCHING: '',
  INFERENCE_MAX_BATCH_SIZE: '32',
  INFERENCE_MAX_WAIT_MS: '2',
  PREDICTION_CACHE_TTL_MS: '0',
  WS_MESSAGES_PER_SECOND: '1000000',
}

/** Requests (or messages) answered with a prediction in `seconds`, over `connections` HTTP connections. */
function http(baseUrl: string, token: string, connections: number, seconds: number) {
  const bodies = irisRows().map((row) => JSON.stringify({ inputs: irisInputs(row) }))
  let next = 0
  return new Promise<number>((resolve, reject) => {
    autocannon(
      {
        url: baseUrl,
        connections,
        duration: seconds,
        requests: [
          {
            method: 'POST',
            path: '/v1/models/iris/predict',
            headers: { 'content-type': 'application/json', ...bearer(token) },
            setupRequest: (request) => {
              request.body = bodies[next++ % bodies.length]
              return request
            },
          },
        ],
      },
      (error, result) => {
        if (error) return reject(error)
        resolve(result['2xx'])
      },
    )
  })
}

/** Predictions over `SOCKETS` sockets, one in flight on each, for `seconds`. */
async function sockets(baseUrl: string, token: string, seconds: number): Promise<number> {
  const url = `${baseUrl.replace('http', 'ws')}/v1/models/iris/ws`
  const rows = irisRows()
  const open = await Promise.all(
    Array.from(
      { length: SOCKETS },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const socket = new WebSocket(url, { headers: bearer(token) })
          socket.once('open', () => resolve(socket))
          socket.once('error', reject)
        }),
    ),
  )
  let answered = 0
  let running = true
  open.forEach((socket, s) => {
    let i = s
    const send = () =>
      socket.send(JSON.stringify({ id: i, inputs: irisInputs(rows[i++ % rows.length] ?? []) }))
    socket.on('message', (data) => {
      if (!String(data).includes('"problem"')) answered++
      if (running) send()
    })
    send()
  })
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  running = false
  const total = answered
  for (const socket of open) socket.close()
  return total
}

async function main() {
  const { values } = parseArgs({ options: { duration: { type: 'string', default: '3' } } })
  const rounds = Math.max(1, Number(values.duration))
  ensureBuilt()
  const jwtSecret = randomUUID().repeat(2)
  const start = (env: Record<string, string>) =>
    startServer(
      {},
      {
        auth: 'on',
        admin: { email: ADMIN.username, password: ADMIN.password },
        jwtSecret,
        env: { ...COMMON, ...env },
      },
    )
  const servers: RunningServer[] = []
  try {
    const logOn = await start({ PREDICTION_LOG_SAMPLE_RATE: '1' })
    servers.push(logOn)
    const logOff = await start({ PREDICTION_LOG_SAMPLE_RATE: '0' })
    servers.push(logOff)
    const tokenOn = await logIn(logOn.baseUrl, ADMIN)
    const tokenOff = await logIn(logOff.baseUrl, ADMIN)
    const totals = { http16: 0, ws16: 0, logOn64: 0, logOff64: 0 }
    // One warm-up slice each, not counted.
    await http(logOn.baseUrl, tokenOn, 16, SLICE_S)
    await sockets(logOn.baseUrl, tokenOn, SLICE_S)
    await http(logOff.baseUrl, tokenOff, 64, SLICE_S)
    for (let round = 0; round < rounds; round++) {
      totals.http16 += await http(logOn.baseUrl, tokenOn, SOCKETS, SLICE_S)
      totals.ws16 += await sockets(logOn.baseUrl, tokenOn, SLICE_S)
      totals.logOn64 += await http(logOn.baseUrl, tokenOn, 64, SLICE_S)
      totals.logOff64 += await http(logOff.baseUrl, tokenOff, 64, SLICE_S)
    }
    const perSecond = (count: number) => Math.round(count / (rounds * SLICE_S))
    const result = {
      seconds_per_scenario: rounds * SLICE_S,
      http_predictions_per_s_16_connections: perSecond(totals.http16),
      ws_predictions_per_s_16_sockets: perSecond(totals.ws16),
      ws_vs_http: Number((totals.ws16 / totals.http16).toFixed(2)),
      log_on_requests_per_s_64_connections: perSecond(totals.logOn64),
      log_off_requests_per_s_64_connections: perSecond(totals.logOff64),
      log_on_vs_off: Number((totals.logOn64 / totals.logOff64).toFixed(3)),
    }
    console.log(JSON.stringify(result, null, 2))
  } finally {
    await stopAllServers()
  }
}

await main()
