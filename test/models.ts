import { readFileSync } from 'node:fs'
import { expect } from 'vitest'
import type { GoldenFile } from '../scripts/training/artifacts.js'
import type { ModelCard } from '../src/modules/models/card.js'
import type { TensorData } from '../src/modules/models/runtime/backend.js'
import {
  IRIS_LIKE,
  type LinearClassifier,
  linearClassifierSpec,
  type TestModelSpec,
} from '../src/modules/models/runtime/test-backend.js'
import { injectAs, type TestApp, type TestUser } from './helpers.js'

/** The shipped models' committed files: `<name>.card.json`, `<name>.onnx`, `<name>.golden.json`. */
export const MODELS_DIR = new URL('../models/', import.meta.url)

export type ShippedModel = 'iris' | 'car-price'

const readJson = <T>(file: string): T => JSON.parse(readFileSync(new URL(file, MODELS_DIR), 'utf8'))

export const shippedCard = (name: ShippedModel) => readJson<ModelCard>(`${name}.card.json`)
export const shippedGolden = (name: ShippedModel) => readJson<GoldenFile>(`${name}.golden.json`)
export const shippedBytes = (name: ShippedModel) =>
  new Uint8Array(readFileSync(new URL(`${name}.onnx`, MODELS_DIR)))

/** `IRIS_LIKE` with its classes reversed, so every answer tells the two apart. */
export const IRIS_LIKE_REVERSED: LinearClassifier = {
  weights: IRIS_LIKE.weights.map((row) => [...row].reverse()),
  bias: [...IRIS_LIKE.bias].reverse(),
}

/**
 * `linearClassifierSpec` behind the shipped iris graph's interface (`float_input` ->
 * `probabilities`, `label`), so the iris card describes it unchanged.
 */
export function irisClassifierSpec(model: LinearClassifier = IRIS_LIKE): TestModelSpec {
  const spec = linearClassifierSpec(model)
  return {
    signature: {
      ...spec.signature,
      inputs: spec.signature.inputs.map((input) => ({ ...input, name: 'float_input' })),
    },
    predictRow: (row) => spec.predictRow({ x: row.float_input as TensorData }),
  }
}

/** `form` as an `app.inject` body, encoded as a browser or curl would send it. */
export async function formBody(form: FormData) {
  const response = new Response(form)
  return {
    payload: Buffer.from(await response.arrayBuffer()),
    headers: { 'content-type': response.headers.get('content-type') as string },
  }
}

export interface ModelUploadParts {
  card?: unknown
  /** Send the card as a file part rather than a text field. */
  cardAsFile?: boolean
  onnx?: Uint8Array
}

/** The multipart body of `POST /v1/models`; a part left out is not sent. */
export function modelUpload(parts: ModelUploadParts) {
  const form = new FormData()
  if (parts.card !== undefined) {
    const text = JSON.stringify(parts.card)
    if (parts.cardAsFile) {
      form.append('card', new Blob([text], { type: 'application/json' }), 'card.json')
    } else {
      form.append('card', text)
    }
  }
  if (parts.onnx !== undefined) {
    form.append('onnx', new Blob([parts.onnx], { type: 'application/octet-stream' }), 'model.onnx')
  }
  return formBody(form)
}

/** Uploads one version of a model as `admin` and expects 201. */
export async function registerVersion(
  t: TestApp,
  admin: TestUser,
  card: ModelCard,
  onnx: Uint8Array,
) {
  const response = await injectAs(
    t,
    admin,
  )({ method: 'POST', url: '/v1/models', ...(await modelUpload({ card, onnx })) })
  expect(response.statusCode, response.body).toBe(201)
  return response
}
