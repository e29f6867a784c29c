import { AppError } from '../../../shared/errors.js'

/** Element types a tensor can hold, named as ONNX Runtime names them. */
export type ElementType =
  | 'float32'
  | 'float64'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  | 'string'

/** The JavaScript container of each element type (`bool` is one byte per element, 0 or 1). */
export interface TensorDataByType {
  float32: Float32Array
  float64: Float64Array
  int8: Int8Array
  uint8: Uint8Array
  int16: Int16Array
  uint16: Uint16Array
  int32: Int32Array
  uint32: Uint32Array
  int64: BigInt64Array
  uint64: BigUint64Array
  bool: Uint8Array
  string: string[]
}

/** A dense tensor in row-major order: `data.length` is the product of `dims`. */
export type TensorData = {
  [T in ElementType]: { type: T; dims: readonly number[]; data: TensorDataByType[T] }
}[ElementType]

/**
 * One dimension of a declared shape: a size, a symbolic name such as `'batch'`, or -1 for a
 * dimension that is dynamic and unnamed.
 */
export type Dim = number | string

/** An input or output of a graph, as the file declares it. */
export interface ValueSignature {
  name: string
  type: ElementType
  shape: Dim[]
}

/** What a loaded graph declares; registration compares it with the model card. */
export interface ModelSignature {
  inputs: ValueSignature[]
  outputs: ValueSignature[]
}

export type Feeds = Record<string, TensorData>

export interface LoadedModel {
  readonly signature: ModelSignature
  /** Runs the graph once; feeds must name every input. Rejects with `InferenceError`. */
  run(feeds: Feeds): Promise<Feeds>
  /** Frees the session and its threads; later runs reject. Safe to call twice. */
  release(): Promise<void>
}

/** How a session runs; omitted keys keep the runtime's defaults. */
export interface LoadOptions {
  /** Threads that parallelise one operator (ONNX Runtime's default is one per core). */
  intraOpNumThreads?: number
  /** Threads that run independent operators at once, used when executionMode is parallel. */
  interOpNumThreads?: number
  executionMode?: 'sequential' | 'parallel'
  /** Shows in the runtime's own log lines. */
  logId?: string
}

/** Turns model bytes into a runnable model: ONNX Runtime in production, a double in tests. */
export interface InferenceBackend {
  readonly name: string
  /** Rejects with `ModelLoadError` when the bytes are not a usable model. */
  load(bytes: Uint8Array, options?: LoadOptions): Promise<LoadedModel>
}

/**
 * - `not_onnx`: the bytes do not parse as an ONNX model at all;
 * - `invalid_model`: they parse, but the graph is broken (a node reads a value nothing
 *   produces, an unknown operator or opset, inconsistent types);
 * - `unsupported`: the graph is valid but has an input or output this server cannot pass as
 *   a tensor (a sequence or map such as scikit-learn's ZipMap, float16, 4-bit integers).
 */
export type ModelLoadFailure = 'not_onnx' | 'invalid_model' | 'unsupported'

/** The model file cannot be served; `reason` says why and the message says what to fix. */
export class ModelLoadError extends AppError {
  constructor(
    readonly reason: ModelLoadFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('MODEL_INVALID', 422, message, { reason })
    this.name = 'ModelLoadError'
    if (options?.cause !== undefined) this.cause = options.cause
  }
}

/**
 * A run failed: feeds that do not fit the graph, a runtime error, or a model that was released.
 * Requests are validated against the card before they reach a backend, so this is a 500.
 */
export class InferenceError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INFERENCE_FAILED', 500, message)
    this.name = 'InferenceError'
    if (options?.cause !== undefined) this.cause = options.cause
  }
}

/** Number of elements a tensor of these dims holds. */
export function elementCount(dims: readonly number[]): number {
  let count = 1
  for (const dim of dims) count *= dim
  return count
}

const typedArrayOf = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
} as const

/** An empty container of `length` elements for `type`. */
export function allocateData<T extends ElementType>(type: T, length: number): TensorDataByType[T] {
  if (type === 'string') return new Array<string>(length).fill('') as TensorDataByType[T]
  const Constructor = typedArrayOf[type as Exclude<ElementType, 'string'>]
  return new Constructor(length) as TensorDataByType[T]
}

/** Builds a tensor, checking that the data fits the dims. */
export function tensor<T extends ElementType>(
  type: T,
  dims: readonly number[],
  data: TensorDataByType[T],
): Extract<TensorData, { type: T }> {
  if (data.length !== elementCount(dims)) {
    throw new RangeError(
      `a ${type} tensor of dims [${dims.join(', ')}] needs ${elementCount(dims)} elements, got ${data.length}`,
    )
  }
  return { type, dims: [...dims], data } as unknown as Extract<TensorData, { type: T }>
}

/**
 * What is wrong with feeds for a graph of this signature: missing or unknown inputs, wrong
 * element types, data that does not fill the dims, dims that break a fixed size. Empty when
 * the feeds fit.
 */
export function feedMismatches(signature: ModelSignature, feeds: Feeds): string[] {
  const problems: string[] = []
  const declared = new Map(signature.inputs.map((input) => [input.name, input]))
  for (const name of Object.keys(feeds)) {
    if (!declared.has(name)) problems.push(`'${name}' is not an input of the model`)
  }
  for (const input of signature.inputs) {
    const feed = feeds[input.name]
    if (feed === undefined) {
      problems.push(`input '${input.name}' is missing`)
      continue
    }
    if (feed.type !== input.type) {
      problems.push(`input '${input.name}' must be ${input.type}, got ${feed.type}`)
    }
    if (feed.data.length !== elementCount(feed.dims)) {
      problems.push(
        `input '${input.name}' has ${feed.data.length} elements for dims [${feed.dims.join(', ')}]`,
      )
    }
    if (input.shape.length > 0 && feed.dims.length !== input.shape.length) {
      problems.push(
        `input '${input.name}' must have ${input.shape.length} dims, got ${feed.dims.length}`,
      )
    } else {
      input.shape.forEach((dim, axis) => {
        if (typeof dim === 'number' && dim >= 0 && feed.dims[axis] !== dim) {
          problems.push(`input '${input.name}' must have size ${dim} on axis ${axis}`)
        }
      })
    }
  }
  return problems
}
