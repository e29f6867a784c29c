import type { Worker } from 'node:worker_threads'
import { startThread } from '../../../shared/project-files.js'
import {
  type Feeds,
  feedMismatches,
  type InferenceBackend,
  InferenceError,
  type LoadedModel,
  type LoadOptions,
  ModelLoadError,
  type ModelSignature,
} from './backend.js'
import type { FromWorker, ToWorker, WorkerInit } from './onnx-worker.js'

/** Starts the thread that will own a session. */
function startWorker(init: WorkerInit): Worker {
  return startThread('modules/models/runtime/onnx-worker', {
    workerData: init,
    transferList: [init.bytes.buffer as ArrayBuffer],
  })
}

/** The worker's answer to loading, or why it never gave one. */
function firstMessage(worker: Worker): Promise<FromWorker> {
  const listeners = {
    message: (_message: FromWorker) => {},
    error: (_error: Error) => {},
    exit: (_code: number) => {},
  }
  return new Promise<FromWorker>((resolve, reject) => {
    const failed = (cause: unknown) =>
      reject(new Error('The ONNX worker could not start.', { cause }))
    listeners.message = resolve
    listeners.error = failed
    listeners.exit = (code) => failed(new Error(`the worker exited with code ${code}`))
    worker.once('message', listeners.message)
    worker.once('error', listeners.error)
    worker.once('exit', listeners.exit)
  }).finally(() => {
    // Only these: removeAllListeners would also drop the Worker's own internal listeners.
    worker.off('message', listeners.message)
    worker.off('error', listeners.error)
    worker.off('exit', listeners.exit)
  })
}

interface PendingRun {
  resolve: (outputs: Feeds) => void
  reject: (error: Error) => void
}

/** A session on its own worker thread; runs are queued there in the order they were sent. */
class OnnxModel implements LoadedModel {
  readonly #worker: Worker
  readonly #pending = new Map<number, PendingRun>()
  #nextId = 0
  /** Why runs are refused: set on release or when the thread dies. */
  #closed: Error | undefined
  #released: Promise<void> | undefined
  #exited = false

  constructor(
    worker: Worker,
    readonly signature: ModelSignature,
  ) {
    this.#worker = worker
    // An idle model must not keep the process alive; a run in flight does (see #track).
    worker.unref()
    worker.on('message', (message: FromWorker) => this.#receive(message))
    worker.on('error', (error) =>
      this.#fail(new InferenceError('The ONNX worker failed.', { cause: error })),
    )
    worker.on('exit', () => {
      this.#exited = true
      this.#fail(
        new InferenceError(
          this.#released ? 'The model has been released.' : 'The ONNX worker stopped.',
        ),
      )
    })
  }

  run(feeds: Feeds): Promise<Feeds> {
    if (this.#closed) return Promise.reject(this.#closed)
    const problems = feedMismatches(this.signature, feeds)
    if (problems.length > 0) {
      return Promise.reject(
        new InferenceError(`The feeds do not fit the model: ${problems.join('; ')}.`),
      )
    }
    const id = this.#nextId++
    return new Promise<Feeds>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#track()
      this.#post({ kind: 'run', id, feeds })
    })
  }

  release(): Promise<void> {
    if (this.#released) return this.#released
    this.#closed ??= new InferenceError('The model has been released.')
    if (this.#exited) {
      this.#released = Promise.resolve()
      return this.#released
    }
    this.#worker.ref()
    // Runs sent before the release still finish: the worker handles messages in order.
    this.#released = new Promise<void>((resolve) => {
      this.#worker.once('exit', () => resolve())
      this.#post({ kind: 'release' })
    })
    return this.#released
  }

  #post(message: ToWorker): void {
    this.#worker.postMessage(message)
  }

  #receive(message: FromWorker): void {
    if (message.kind !== 'result' && message.kind !== 'run_failed') return
    const pending = this.#pending.get(message.id)
    if (!pending) return
    this.#pending.delete(message.id)
    this.#track()
    if (message.kind === 'result') pending.resolve(message.outputs)
    else pending.reject(new InferenceError(`The model failed to run: ${message.message}`))
  }

  #fail(error: InferenceError): void {
    this.#closed ??= error
    for (const pending of this.#pending.values()) pending.reject(error)
    this.#pending.clear()
  }

  #track(): void {
    if (this.#pending.size > 0) this.#worker.ref()
    else if (!this.#released) this.#worker.unref()
  }
}

/**
 * ONNX Runtime (CPU). Each loaded model gets a session on its own worker thread, so inference
 * never runs on the event loop and one model's long batch does not hold up another model.
 * `defaults` apply to every load; a load's own options override them.
 */
export function createOnnxBackend(defaults: LoadOptions = {}): InferenceBackend {
  return {
    name: 'onnx',
    async load(bytes, options = {}) {
      // A copy goes to the thread, so the caller's buffer stays usable.
      const worker = startWorker({ bytes: bytes.slice(), options: { ...defaults, ...options } })
      const first = await firstMessage(worker)
      if (first.kind === 'load_failed') {
        await worker.terminate()
        throw new ModelLoadError(first.reason, first.message)
      }
      if (first.kind !== 'loaded') {
        await worker.terminate()
        throw new Error(`The ONNX worker answered ${first.kind} before loading.`)
      }
      return new OnnxModel(worker, first.signature)
    },
  }
}
