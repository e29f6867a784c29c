/**
 * The ceiling of model serving: node:http in front of one ONNX Runtime session of the iris
 * model, opened as the server opens it (one intra-op thread). One session.run per request —
 * 1 row for POST /v1/predict, every instance in one run for the batch endpoint — with the
 * JSON parsing, checks and answer a route cannot skip, and nothing else: no batcher, no
 * cache, no auth. The paths and bodies are the service's, so the bench sends both the same
 * requests.
 *
 *   MODEL_PATH  the iris ONNX file
 */
import * as ort from 'onnxruntime-node'
import { IRIS_FEATURES } from '../iris-data.js'
import { SESSION_OPTIONS } from '../onnx-ceiling.js'
import { answerHealth, HttpFailure, readJson, sendJson, serve } from './http.js'

const LABELS = ['setosa', 'versicolor', 'virginica'] as const
const WIDTH = IRIS_FEATURES.length
const MODEL = { model: 'iris', version: '1.0.0' }

const modelPath = process.env.MODEL_PATH
if (!modelPath) throw new Error('MODEL_PATH is not set')
const session = await ort.InferenceSession.create(modelPath, SESSION_OPTIONS)
const [input] = session.inputNames
if (input === undefined) throw new Error(`${modelPath} declares no input`)

function finite(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new HttpFailure(422, 'every input must be a finite number')
  }
  return value
}

/** Runs `rows` rows of WIDTH values each in one call; answers label and probabilities per row. */
async function infer(data: Float32Array, rows: number) {
  const outputs = await session.run({
    [input as string]: new ort.Tensor('float32', data, [rows, WIDTH]),
  })
  const probabilities = outputs.probabilities?.data as Float32Array
  const labels = outputs.label?.data as BigInt64Array
  return Array.from({ length: rows }, (_, row) => {
    const index = Number(labels[row])
    return {
      class: index,
      label: LABELS[index] ?? String(index),
      probabilities: Object.fromEntries(
        LABELS.map((label, column) => [label, probabilities[row * LABELS.length + column]]),
      ),
    }
  })
}

async function predictOne(body: unknown) {
  const features = (body as { features?: unknown } | null)?.features
  if (!Array.isArray(features) || features.length !== WIDTH) {
    throw new HttpFailure(422, `features must be ${WIDTH} numbers`)
  }
  const [prediction] = await infer(Float32Array.from(features, finite), 1)
  return { ...prediction, ...MODEL, cached: false }
}

async function predictBatch(body: unknown) {
  const startedAt = performance.now()
  const instances = (body as { instances?: unknown } | null)?.instances
  if (!Array.isArray(instances) || instances.length === 0) {
    throw new HttpFailure(422, 'instances must be a non-empty array')
  }
  const data = new Float32Array(instances.length * WIDTH)
  instances.forEach((instance: Record<string, unknown>, row) => {
    IRIS_FEATURES.forEach((name, column) => {
      data[row * WIDTH + column] = finite(instance?.[name])
    })
  })
  const predictions = (await infer(data, instances.length)).map(({ label, probabilities }) => ({
    prediction: label,
    probabilities,
  }))
  return { ...MODEL, predictions, errors: [], latency_ms: performance.now() - startedAt }
}

await serve(
  async (request, response) => {
    if (request.method === 'GET' && request.url === '/health') return answerHealth(response)
    if (request.method !== 'POST') throw new HttpFailure(404, 'no such route')
    if (request.url === '/v1/predict') {
      return sendJson(response, 200, await predictOne(await readJson(request)))
    }
    if (request.url === '/v1/models/iris/predict/batch') {
      return sendJson(response, 200, await predictBatch(await readJson(request)))
    }
    throw new HttpFailure(404, 'no such route')
  },
  () => session.release(),
)
