import { ServiceUnavailable } from '../../../shared/errors.js'
import { PredictionQueueFull } from '../errors.js'
import {
  allocateData,
  type Feeds,
  InferenceError,
  type LoadedModel,
  type TensorData,
} from './backend.js'

/** One flushed batch, reported when it has settled. */
export interface BatchInfo {
  /** Submits in the batch. */
  requests: number
  /** Their total size (rows, for a model batcher). */
  size: number
  /** How long the oldest member waited before the batch started. */
  waitMs: number
  runMs: number
  /** The whole batch failed (per-row failures do not count). */
  failed: boolean
}

export interface MicroBatcherOptions<Row, Result> {
  /** A batch starts once its members' sizes reach this. */
  maxBatchSize: number
  /** ...or once its oldest member has waited this long; 0 gathers what arrives in one tick. */
  maxWaitMs: number
  /**
   * Runs one batch and answers one entry per row, in order. An entry that is an `Error`
   * fails that row alone; a rejection fails every row of the batch.
   */
  run: (rows: Row[]) => Promise<ReadonlyArray<Result | Error>>
  /** Size of one submit (default 1): a request carrying several rows counts as several. */
  sizeOf?: (row: Row) => number
  /**
   * Batches in flight at once (default 1). With one, requests that arrive while the model is
   * busy gather into the next batch instead of queueing behind it one by one.
   */
  maxConcurrentBatches?: number
  /** Called after each batch, e.g. to feed a batch-size histogram. Must not throw. */
  onBatch?: (info: BatchInfo) => void
  /**
   * Most sizes (rows) waiting at once; a submit beyond it is refused at once with
   * PREDICTION_QUEUE_FULL, so overload costs callers a retry instead of memory and latency.
   * A submit larger than the bound is still taken when nothing waits. Unbounded when omitted.
   */
  maxQueued?: number
}

export interface MicroBatcher<Row, Result> {
  submit(row: Row): Promise<Result>
  /** Submits waiting for a batch. */
  readonly queued: number
  /** Batches running now. */
  readonly running: number
  /** Flushes what is queued and resolves when every batch has settled; later submits fail. */
  close(): Promise<void>
}

interface Queued<Row, Result> {
  row: Row
  size: number
  enqueuedAt: number
  resolve: (result: Result) => void
  reject: (error: unknown) => void
}

type Trigger = 'submit' | 'timer' | 'settled'

function checkOptions(options: MicroBatcherOptions<unknown, unknown>): void {
  const { maxBatchSize, maxWaitMs, maxConcurrentBatches = 1 } = options
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
    throw new RangeError(`maxBatchSize must be a positive integer, got ${maxBatchSize}`)
  }
  if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
    throw new RangeError(`maxWaitMs must be a finite number >= 0, got ${maxWaitMs}`)
  }
  if (options.maxQueued !== undefined && !(options.maxQueued >= 1)) {
    throw new RangeError(`maxQueued must be at least 1, got ${options.maxQueued}`)
  }
  if (!Number.isInteger(maxConcurrentBatches) || maxConcurrentBatches < 1) {
    throw new RangeError(
      `maxConcurrentBatches must be a positive integer, got ${maxConcurrentBatches}`,
    )
  }
}

/**
 * Gathers concurrent submits into one `run` call. A batch starts when its members' sizes
 * reach `maxBatchSize`, or `maxWaitMs` after its oldest member arrived, so a lone request
 * waits at most `maxWaitMs` (plus the time a busy model needs to finish its batch).
 */
export function createMicroBatcher<Row, Result>(
  options: MicroBatcherOptions<Row, Result>,
): MicroBatcher<Row, Result> {
  checkOptions(options as MicroBatcherOptions<unknown, unknown>)
  const { maxBatchSize, maxWaitMs, run, onBatch } = options
  const sizeOf = options.sizeOf ?? (() => 1)
  const maxConcurrent = options.maxConcurrentBatches ?? 1
  const maxQueued = options.maxQueued ?? Number.POSITIVE_INFINITY

  const queue: Queued<Row, Result>[] = []
  let queuedSize = 0
  let running = 0
  let closing = false
  let timer: { head: Queued<Row, Result>; cancel: () => void } | undefined
  const idleWaiters: (() => void)[] = []

  function takeBatch(): Queued<Row, Result>[] {
    const batch: Queued<Row, Result>[] = []
    let size = 0
    for (const next of queue) {
      if (batch.length > 0 && size + next.size > maxBatchSize) break
      batch.push(next)
      size += next.size
    }
    queue.splice(0, batch.length)
    queuedSize -= size
    return batch
  }

  function isDue(head: Queued<Row, Result>, trigger: Trigger): boolean {
    if (closing || queuedSize >= maxBatchSize) return true
    // A fresh submit waits for its window; the timer or a settling batch starts it.
    if (trigger === 'submit') return false
    return trigger === 'timer' || performance.now() - head.enqueuedAt >= maxWaitMs
  }

  function armTimer(head: Queued<Row, Result>): void {
    if (timer?.head === head) return
    timer?.cancel()
    const fire = () => {
      timer = undefined
      pump('timer')
    }
    const remaining = maxWaitMs - (performance.now() - head.enqueuedAt)
    if (maxWaitMs === 0 || remaining <= 0) {
      const immediate = setImmediate(fire)
      timer = { head, cancel: () => clearImmediate(immediate) }
    } else {
      const timeout = setTimeout(fire, remaining)
      timer = { head, cancel: () => clearTimeout(timeout) }
    }
  }

  function pump(trigger: Trigger): void {
    while (running < maxConcurrent) {
      const head = queue[0]
      if (head === undefined || !isDue(head, trigger)) break
      void dispatch(takeBatch())
    }
    const head = queue[0]
    if (head !== undefined && running < maxConcurrent) {
      armTimer(head)
    } else {
      // Nothing waits, or every slot is busy and a settling batch will pump again.
      timer?.cancel()
      timer = undefined
    }
    if (head === undefined && running === 0) {
      for (const resolve of idleWaiters.splice(0)) resolve()
    }
  }

  async function dispatch(batch: Queued<Row, Result>[]): Promise<void> {
    running++
    const startedAt = performance.now()
    let failed = false
    try {
      const results = await run(batch.map((member) => member.row))
      if (results.length !== batch.length) {
        throw new Error(
          `the batch function answered ${results.length} results for ${batch.length} rows`,
        )
      }
      batch.forEach((member, index) => {
        const result = results[index] as Result | Error
        if (result instanceof Error) member.reject(result)
        else member.resolve(result)
      })
    } catch (error) {
      failed = true
      for (const member of batch) member.reject(error)
    }
    running--
    report({
      requests: batch.length,
      size: batch.reduce((sum, member) => sum + member.size, 0),
      waitMs: startedAt - (batch[0]?.enqueuedAt ?? startedAt),
      runMs: performance.now() - startedAt,
      failed,
    })
    pump('settled')
  }

  function report(info: BatchInfo): void {
    if (!onBatch) return
    try {
      onBatch(info)
    } catch (error) {
      // A broken metrics hook must not fail requests that have already been answered.
      process.emitWarning(error instanceof Error ? error : String(error), 'MicroBatcherHook')
    }
  }

  return {
    submit(row) {
      if (closing) return Promise.reject(new ServiceUnavailable('The model is shutting down.'))
      const size = sizeOf(row)
      if (queuedSize > 0 && queuedSize + size > maxQueued) {
        return Promise.reject(
          new PredictionQueueFull(
            `The model is busy: ${queuedSize} rows wait already; try again in a moment.`,
          ),
        )
      }
      return new Promise<Result>((resolve, reject) => {
        queue.push({ row, size, enqueuedAt: performance.now(), resolve, reject })
        queuedSize += size
        pump('submit')
      })
    },
    get queued() {
      return queue.length
    },
    get running() {
      return running
    },
    close() {
      closing = true
      return new Promise<void>((resolve) => {
        idleWaiters.push(resolve)
        pump('timer')
      })
    },
  }
}

function batchDim(tensor: TensorData, what: string): number {
  const rows = tensor.dims[0]
  if (rows === undefined) throw new InferenceError(`${what} is a scalar; it has no batch dim`)
  return rows
}

/**
 * Concatenates tensors along dim 0: [n1, ...rest], [n2, ...rest] -> [n1 + n2, ...rest].
 * All must share the element type and the dims after the first.
 */
export function stackRows(tensors: readonly TensorData[]): TensorData {
  const first = tensors[0]
  if (first === undefined) throw new InferenceError('stackRows needs at least one tensor')
  const rest = first.dims.slice(1)
  let rows = 0
  for (const [index, tensor] of tensors.entries()) {
    const what = `tensor ${index}`
    rows += batchDim(tensor, what)
    if (tensor.type !== first.type) {
      throw new InferenceError(`${what} is ${tensor.type}, tensor 0 is ${first.type}`)
    }
    if (
      tensor.dims.length !== first.dims.length ||
      rest.some((dim, i) => tensor.dims[i + 1] !== dim)
    ) {
      throw new InferenceError(
        `${what} has dims [${tensor.dims.join(', ')}], which do not stack with [${first.dims.join(', ')}]`,
      )
    }
  }
  if (tensors.length === 1) return first
  const length = tensors.reduce((sum, tensor) => sum + tensor.data.length, 0)
  if (first.type === 'string') {
    const data = tensors.flatMap((tensor) => tensor.data as string[])
    return { type: 'string', dims: [rows, ...rest], data }
  }
  const data = allocateData(first.type, length) as Exclude<TensorData['data'], string[]>
  let offset = 0
  for (const tensor of tensors) {
    // The same element type throughout, checked above.
    ;(data as Float32Array).set(tensor.data as Float32Array, offset)
    offset += tensor.data.length
  }
  return { type: first.type, dims: [rows, ...rest], data } as TensorData
}

/**
 * Splits a tensor along dim 0 into parts of `counts[i]` rows each; the reverse of `stackRows`.
 * Each part owns a copy of its data.
 */
export function splitRows(tensor: TensorData, counts: readonly number[]): TensorData[] {
  const rows = batchDim(tensor, 'the tensor')
  const total = counts.reduce((sum, count) => sum + count, 0)
  if (total !== rows) {
    throw new InferenceError(`cannot split ${rows} rows into parts of ${counts.join(' + ')}`)
  }
  const rest = tensor.dims.slice(1)
  const rowLength = rest.reduce((product, dim) => product * dim, 1)
  let start = 0
  return counts.map((count) => {
    const end = start + count * rowLength
    const data = tensor.data.slice(start, end)
    start = end
    return { type: tensor.type, dims: [count, ...rest], data } as TensorData
  })
}

export interface ModelBatcherOptions
  extends Pick<
    MicroBatcherOptions<Feeds, Feeds>,
    'maxBatchSize' | 'maxWaitMs' | 'maxConcurrentBatches' | 'onBatch' | 'maxQueued'
  > {}

/** Rows in one submit: the shared dim 0 of its tensors. */
function rowsOf(feeds: Feeds): number {
  let rows: number | undefined
  for (const [name, tensor] of Object.entries(feeds)) {
    const count = batchDim(tensor, `input '${name}'`)
    if (rows !== undefined && count !== rows) {
      throw new InferenceError(`input '${name}' has ${count} rows, another input has ${rows}`)
    }
    rows = count
  }
  if (rows === undefined) throw new InferenceError('the feeds have no inputs')
  return rows
}

/** Submits whose inputs share names, types and per-row dims can run as one tensor. */
function stackKey(feeds: Feeds): string {
  return Object.keys(feeds)
    .sort()
    .map((name) => {
      const tensor = feeds[name] as TensorData
      return `${name}:${tensor.type}:${tensor.dims.slice(1).join('x')}`
    })
    .join('|')
}

interface Submitted {
  feeds: Feeds
  rows: number
}

async function runStacked(model: Pick<LoadedModel, 'run'>, members: Submitted[]): Promise<Feeds[]> {
  const counts = members.map((member) => member.rows)
  const total = counts.reduce((sum, count) => sum + count, 0)
  const stacked: Feeds = {}
  for (const name of Object.keys((members[0] as Submitted).feeds)) {
    stacked[name] = stackRows(members.map((member) => member.feeds[name] as TensorData))
  }
  const outputs = await model.run(stacked)
  const parts: Feeds[] = members.map(() => ({}))
  for (const [name, output] of Object.entries(outputs)) {
    if (output.dims[0] !== total) {
      throw new InferenceError(
        `output '${name}' has dims [${output.dims.join(', ')}], not one row per input row; serve this model with maxBatchSize 1`,
      )
    }
    splitRows(output, counts).forEach((part, index) => {
      ;(parts[index] as Feeds)[name] = part
    })
  }
  return parts
}

/**
 * Micro-batching for one loaded model. Each submit carries its inputs with a leading batch
 * dim (usually 1 row) and gets back its own rows of every output. Submits whose per-row
 * shapes differ (say, sequences of different lengths) run as separate calls in the same
 * flush, and a failing call fails only its own submits. `maxBatchSize` counts rows.
 */
export function createModelBatcher(
  model: Pick<LoadedModel, 'run'>,
  options: ModelBatcherOptions,
): MicroBatcher<Feeds, Feeds> {
  const batcher = createMicroBatcher<Submitted, Feeds>({
    ...options,
    sizeOf: (submitted) => submitted.rows,
    run: async (submits) => {
      const groups = new Map<string, number[]>()
      submits.forEach((submitted, index) => {
        const key = stackKey(submitted.feeds)
        groups.set(key, [...(groups.get(key) ?? []), index])
      })
      const results: (Feeds | Error)[] = new Array(submits.length)
      for (const indexes of groups.values()) {
        try {
          const parts = await runStacked(
            model,
            indexes.map((index) => submits[index] as Submitted),
          )
          indexes.forEach((index, i) => {
            results[index] = parts[i] as Feeds
          })
        } catch (error) {
          const failure = error instanceof Error ? error : new InferenceError(String(error))
          for (const index of indexes) results[index] = failure
        }
      }
      return results
    },
  })
  return {
    submit(feeds) {
      try {
        return batcher.submit({ feeds, rows: rowsOf(feeds) })
      } catch (error) {
        return Promise.reject(error)
      }
    },
    get queued() {
      return batcher.queued
    },
    get running() {
      return batcher.running
    },
    close: () => batcher.close(),
  }
}
