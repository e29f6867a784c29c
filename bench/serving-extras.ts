/**
 * WebSocket predictions beside HTTP ones, the prediction log's cost, and image predictions
 * beside their ceiling, in one run on embedded servers:
 * `npx tsx bench/serving-extras.ts --duration 4`. Scenarios take turns in one-second slices,
 * so each ratio compares the same moments of a noisy machine; an even duration lets the log-on
 * and log-off servers go first equally often.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import * as ort from 'onnxruntime-node'
import sharp from 'sharp'
import WebSocket from 'ws'
import type { GoldenFile } from '../scripts/training/artifacts.js'
import type { ModelCard } from '../src/modules/models/card.js'
import { prepareImage } from '../src/modules/models/images/decode.js'
import { irisInputs, irisRows } from './iris-data.js'
import { bearer, logIn } from './scenarios.js'
import { ensureBuilt, type RunningServer, startServer, stopAllServers } from './server.js'

const ADMIN = { username: 'bench-admin@orderflow.test', password: 'bench-admin-pass' }
const SOCKETS = 16
const SLICE_S = 1
/** Answers other than 2xx, by server and route: a ratio of 2xx counts means little beside them. */
const refused: Record<string, number> = {}

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
  const path = `${baseUrl} /v1/models/iris/predict`
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
        refused[path] = (refused[path] ?? 0) + result.non2xx
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

const MODELS_DIR = new URL('../models/', import.meta.url)
/** The side of the benchmark picture: larger than the model's, so every request resizes. */
const PICTURE_SIDE = 128

/** A held-out picture of the shipped shapes model, enlarged and encoded as PNG. */
async function benchPicture(): Promise<Buffer> {
  const golden = JSON.parse(
    readFileSync(new URL('shapes.golden.json', MODELS_DIR), 'utf8'),
  ) as GoldenFile
  const { input } = golden.cases[0] as GoldenFile['cases'][number]
  const raw = Buffer.from(input.rgb_base64 as string, 'base64')
  return sharp(raw, {
    raw: { width: Number(input.width), height: Number(input.height), channels: 3 },
  })
    .resize(PICTURE_SIDE, PICTURE_SIDE)
    .png()
    .toBuffer()
}

/** The multipart body a client sends for `picture`, and its content type. */
async function multipartBody(picture: Buffer) {
  const form = new FormData()
  form.append('image', new Blob([picture], { type: 'image/png' }), 'picture.png')
  const response = new Response(form)
  return {
    body: Buffer.from(await response.arrayBuffer()),
    contentType: response.headers.get('content-type') as string,
  }
}

/** Image predictions answered in `seconds` over `connections` connections. */
async function images(
  baseUrl: string,
  token: string,
  connections: number,
  seconds: number,
  upload: { body: Buffer; contentType: string },
) {
  return new Promise<number>((resolve, reject) => {
    autocannon(
      {
        url: baseUrl,
        connections,
        duration: seconds,
        requests: [
          {
            method: 'POST',
            path: '/v1/classify-image',
            headers: { 'content-type': upload.contentType, ...bearer(token) },
            body: upload.body,
          },
        ],
      },
      (error, result) => {
        if (error) return reject(error)
        refused[`${baseUrl} /v1/classify-image`] =
          (refused[`${baseUrl} /v1/classify-image`] ?? 0) + result.non2xx
        resolve(result['2xx'])
      },
    )
  })
}

/**
 * The image ceiling: the same decoding and normalisation (sharp, in this process) and one
 * ONNX Runtime run of one picture, `concurrency` at a time, without HTTP, authentication or
 * the batcher.
 */
function imageCeiling(picture: Buffer, concurrency: number) {
  const card = JSON.parse(
    readFileSync(new URL('shapes.card.json', MODELS_DIR), 'utf8'),
  ) as ModelCard
  const image = card.image as NonNullable<ModelCard['image']>
  const session = ort.InferenceSession.create(new URL('shapes.onnx', MODELS_DIR).pathname, {
    intraOpNumThreads: 1,
  })
  return async (seconds: number) => {
    const ready = await session
    const deadline = performance.now() + seconds * 1000
    let done = 0
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const { tensor } = await prepareImage(picture, image, { maxPixels: 25_000_000 })
          await ready.run({
            [image.input]: new ort.Tensor('float32', tensor.data as Float32Array, tensor.dims),
          })
          done++
        }
      }),
    )
    return done
  }
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
    // WebSocket and HTTP at 16 connections get a server of their own too: on the log-on
    // server they gave it twice the traffic of the log-off one, and the pair stopped being alike.
    const transports = await start({ PREDICTION_LOG_SAMPLE_RATE: '1' })
    servers.push(transports)
    // Pictures go to a server of their own, so that decoding them cannot weigh on either
    // side of the prediction log comparison.
    const pictures = await start({ PREDICTION_LOG_SAMPLE_RATE: '1' })
    servers.push(pictures)
    const tokenPictures = await logIn(pictures.baseUrl, ADMIN)
    const tokenOn = await logIn(logOn.baseUrl, ADMIN)
    const tokenOff = await logIn(logOff.baseUrl, ADMIN)
    const tokenTransports = await logIn(transports.baseUrl, ADMIN)
    const picture = await benchPicture()
    const upload = await multipartBody(picture)
    const ceiling = imageCeiling(picture, SOCKETS)
    const totals = { http16: 0, ws16: 0, logOn64: 0, logOff64: 0, image16: 0, imageCeiling16: 0 }
    // One warm-up slice each, not counted.
    await http(transports.baseUrl, tokenTransports, 16, SLICE_S)
    await sockets(transports.baseUrl, tokenTransports, SLICE_S)
    await http(logOn.baseUrl, tokenOn, 64, SLICE_S)
    await http(logOff.baseUrl, tokenOff, 64, SLICE_S)
    await images(pictures.baseUrl, tokenPictures, SOCKETS, SLICE_S, upload)
    await ceiling(SLICE_S)
    for (let round = 0; round < rounds; round++) {
      totals.http16 += await http(transports.baseUrl, tokenTransports, SOCKETS, SLICE_S)
      totals.ws16 += await sockets(transports.baseUrl, tokenTransports, SLICE_S)
      // Which of the two goes first alternates, so neither always follows the same slice.
      if (round % 2 === 0) {
        totals.logOn64 += await http(logOn.baseUrl, tokenOn, 64, SLICE_S)
        totals.logOff64 += await http(logOff.baseUrl, tokenOff, 64, SLICE_S)
      } else {
        totals.logOff64 += await http(logOff.baseUrl, tokenOff, 64, SLICE_S)
        totals.logOn64 += await http(logOn.baseUrl, tokenOn, 64, SLICE_S)
      }
      totals.image16 += await images(pictures.baseUrl, tokenPictures, SOCKETS, SLICE_S, upload)
      totals.imageCeiling16 += await ceiling(SLICE_S)
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
      image_predictions_per_s_16_connections: perSecond(totals.image16),
      image_ceiling_per_s_16_concurrent: perSecond(totals.imageCeiling16),
      image_vs_ceiling: Number((totals.image16 / totals.imageCeiling16).toFixed(2)),
    }
    console.log(JSON.stringify({ ...result, non_2xx: refused }, null, 2))
  } finally {
    await stopAllServers()
  }
}

await main()
