/**
 * The thread that owns one ONNX Runtime session. onnxruntime-node's `run` computes on the
 * calling thread (its promise only defers the start to the next turn of the loop), so a
 * session on the main thread would stall every request while a batch runs. Here the main
 * thread only passes messages; the graph runs on this thread and ONNX Runtime's own pool.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads'
import * as ort from 'onnxruntime-node'
import type {
  ElementType,
  Feeds,
  LoadOptions,
  ModelLoadFailure,
  ModelSignature,
  TensorData,
  ValueSignature,
} from './backend.js'

export interface WorkerInit {
  bytes: Uint8Array
  options: LoadOptions
}

export type ToWorker = { kind: 'run'; id: number; feeds: Feeds } | { kind: 'release' }

export type FromWorker =
  | { kind: 'loaded'; signature: ModelSignature }
  | { kind: 'load_failed'; reason: ModelLoadFailure; message: string }
  | { kind: 'result'; id: number; outputs: Feeds }
  | { kind: 'run_failed'; id: number; message: string }
  | { kind: 'released' }

const servable = new Set<string>([
  'float32',
  'float64',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
  'bool',
  'string',
])

class Unsupported extends Error {}

function toSignature(
  metadata: readonly ort.InferenceSession.ValueMetadata[],
  role: 'input' | 'output',
): ValueSignature[] {
  return metadata.map((value) => {
    if (!value.isTensor) {
      throw new Unsupported(
        `${role} '${value.name}' is a sequence or map, not a tensor; export the model with tensor ${role}s only (for scikit-learn classifiers, convert with zipmap disabled)`,
      )
    }
    if (!servable.has(value.type)) {
      throw new Unsupported(
        `${role} '${value.name}' has element type ${value.type}, which is not supported`,
      )
    }
    // A dynamic dim without a name comes back as an empty symbol.
    const shape = value.shape.map((dim) => (dim === '' ? -1 : dim))
    return { name: value.name, type: value.type as ElementType, shape }
  })
}

/** Sorts the errors of `InferenceSession.create`, which carry no code, by their message. */
function loadFailure(error: unknown): { reason: ModelLoadFailure; message: string } {
  const detail = error instanceof Error ? error.message : String(error)
  if (/protobuf parsing failed|data pointer is null/i.test(detail)) {
    return {
      reason: 'not_onnx',
      message: 'The file is not an ONNX model: it does not parse as one.',
    }
  }
  return { reason: 'invalid_model', message: `The ONNX model is invalid: ${detail}` }
}

function toTensorData(value: ort.OnnxValue): TensorData {
  return { type: value.type, dims: [...value.dims], data: value.data } as TensorData
}

function connect(): MessagePort {
  if (parentPort === null) throw new Error('onnx-worker runs as a worker thread only')
  return parentPort
}

const port = connect()
const send = (message: FromWorker) => port.postMessage(message)

async function main(init: WorkerInit): Promise<void> {
  let session: ort.InferenceSession
  let signature: ModelSignature
  try {
    session = await ort.InferenceSession.create(init.bytes, init.options)
  } catch (error) {
    send({ kind: 'load_failed', ...loadFailure(error) })
    port.close()
    return
  }
  try {
    signature = {
      inputs: toSignature(session.inputMetadata, 'input'),
      outputs: toSignature(session.outputMetadata, 'output'),
    }
  } catch (error) {
    await session.release()
    if (!(error instanceof Unsupported)) throw error
    const message = `The ONNX model cannot be served: ${error.message}.`
    send({ kind: 'load_failed', reason: 'unsupported', message })
    port.close()
    return
  }
  send({ kind: 'loaded', signature })

  const handle = async (message: ToWorker): Promise<void> => {
    if (message.kind === 'release') {
      try {
        await session.release()
      } finally {
        send({ kind: 'released' })
        port.close()
      }
      return
    }
    try {
      const feeds: Record<string, ort.Tensor> = {}
      for (const [name, feed] of Object.entries(message.feeds)) {
        feeds[name] = new ort.Tensor(feed.type, feed.data as ort.Tensor.DataType, feed.dims)
      }
      const results = await session.run(feeds)
      const outputs: Feeds = {}
      for (const [name, value] of Object.entries(results)) outputs[name] = toTensorData(value)
      send({ kind: 'result', id: message.id, outputs })
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error)
      send({ kind: 'run_failed', id: message.id, message: detail })
    }
  }
  // One message at a time and in order, so a release waits for the runs sent before it.
  let previous = Promise.resolve()
  port.on('message', (message: ToWorker) => {
    previous = previous.then(() => handle(message))
  })
}

void main(workerData as WorkerInit)
