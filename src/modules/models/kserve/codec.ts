import { type FieldError, ValidationFailed } from '../../../shared/errors.js'
import {
  allocateData,
  type Dim,
  type ElementType,
  elementCount,
  type Feeds,
  InferenceError,
  type ModelSignature,
  type TensorData,
  tensor,
  type ValueSignature,
} from '../runtime/backend.js'
import type { ServedVersion } from '../serving/types.js'
import type {
  InferInput,
  InferOutput,
  InferRequest,
  InferResponse,
  MetadataTensor,
  ModelMetadata,
} from './schemas.js'

/**
 * Open Inference Protocol (KServe v2) JSON bodies <-> our tensors. Pure: no I/O, no state.
 * Problem paths name places in the request body as body validation does
 * (`body.inputs[0].data[3]`), so a client reads one convention whichever check refused it.
 */

export const PLATFORM = 'onnxruntime_onnx'

const ELEMENT_TYPE_OF = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
} as const satisfies Record<string, ElementType>

export type Datatype = keyof typeof ELEMENT_TYPE_OF

export const DATATYPES = Object.keys(ELEMENT_TYPE_OF) as Datatype[]

const DATATYPE_OF = Object.fromEntries(
  Object.entries(ELEMENT_TYPE_OF).map(([datatype, type]) => [type, datatype]),
) as Record<ElementType, Datatype>

/** Our element type for a protocol datatype; undefined for FP16, BF16 and unknown names. */
export function elementTypeOf(datatype: string): ElementType | undefined {
  return Object.hasOwn(ELEMENT_TYPE_OF, datatype)
    ? ELEMENT_TYPE_OF[datatype as Datatype]
    : undefined
}

export function datatypeOf(type: ElementType): Datatype {
  return DATATYPE_OF[type]
}

/** The protocol's shape: a size, or -1 for any size (a symbolic dim such as the batch). */
const protocolDim = (dim: Dim): number => (typeof dim === 'string' || dim < 0 ? -1 : dim)

const formatShape = (shape: readonly Dim[]) => `[${shape.map(protocolDim).join(', ')}]`

/** A value as a problem message quotes it, kept short whatever the client sent. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 40 ? `${text.slice(0, 37)}...` : text
}

// 2^53 - 1: JSON.parse has already rounded a larger integer, so it is not what was sent.
const EXACT = Number.MAX_SAFE_INTEGER
const FLOAT32_MAX = 3.4028234663852886e38

const INTEGER_RANGES = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  int64: [-EXACT, EXACT],
  uint64: [0, EXACT],
} as const

type IntegerType = keyof typeof INTEGER_RANGES

/** What is wrong with one element for `type`; undefined when it fits. */
function elementProblem(type: ElementType, value: unknown): string | undefined {
  const datatype = datatypeOf(type)
  if (type === 'bool') {
    return typeof value === 'boolean' ? undefined : `must be true or false, got ${quote(value)}`
  }
  if (type === 'string') {
    return typeof value === 'string' ? undefined : `must be a string, got ${quote(value)}`
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return `must be a number, got ${quote(value)}`
  }
  if (type === 'float32' || type === 'float64') {
    return type === 'float32' && Math.abs(value) > FLOAT32_MAX
      ? `${value} is out of range for FP32`
      : undefined
  }
  if (!Number.isInteger(value)) return `must be an integer for ${datatype}, got ${value}`
  const [min, max] = INTEGER_RANGES[type as IntegerType]
  if (value >= min && value <= max) return undefined
  if (type === 'int64' || type === 'uint64') {
    const [low, high] = type === 'int64' ? [-(2 ** 63), 2 ** 63] : [0, 2 ** 64]
    if (value >= low && value < high) {
      return `${value} is beyond ±${EXACT}, the integers a JSON number carries exactly`
    }
    return `${value} is out of range for ${datatype} ${type === 'int64' ? '[-2^63, 2^63 - 1]' : '[0, 2^64 - 1]'}`
  }
  return `${value} is out of range for ${datatype} [${min}, ${max}]`
}

/** Fills a container of `type` from elements that all passed `elementProblem`. */
function toData(type: ElementType, elements: readonly unknown[]): TensorData['data'] {
  const data = allocateData(type, elements.length)
  if (type === 'int64' || type === 'uint64') {
    const ints = data as BigInt64Array | BigUint64Array
    elements.forEach((value, index) => {
      ints[index] = BigInt(value as number)
    })
  } else if (type === 'bool') {
    const bytes = data as Uint8Array
    elements.forEach((value, index) => {
      bytes[index] = value ? 1 : 0
    })
  } else {
    const target = data as { [index: number]: unknown }
    elements.forEach((value, index) => {
      target[index] = value
    })
  }
  return data
}

const more = (count: number, noun: string) => `${count} more ${noun}${count === 1 ? '' : 's'}`

/** Index of each axis of the element at `flat` in a row-major tensor of `shape`. */
function unravel(flat: number, shape: readonly number[]): number[] {
  const indexes: number[] = []
  let rest = flat
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    const size = shape[axis] as number
    indexes.unshift(rest % size)
    rest = Math.floor(rest / size)
  }
  return indexes
}

/**
 * The elements of `data` in row-major order. Nested data must follow the shape exactly: a
 * ragged or misshapen nesting is a client bug that flattening would silently turn into
 * shifted rows.
 */
function flatten(
  data: readonly unknown[],
  shape: readonly number[],
  path: string,
): { elements: unknown[]; nested: boolean } | FieldError {
  const nested = shape.length > 1 && data.some(Array.isArray)
  if (!nested) {
    const expected = elementCount(shape)
    if (data.length === expected) return { elements: [...data], nested }
    return {
      path,
      message: `has ${data.length} elements; shape ${formatShape(shape)} needs ${expected}`,
    }
  }
  const elements: unknown[] = []
  const walk = (items: readonly unknown[], axis: number, at: string): FieldError | undefined => {
    if (items.length !== shape[axis]) {
      return {
        path: at,
        message: `has ${items.length} items; axis ${axis} of shape ${formatShape(shape)} needs ${shape[axis]}`,
      }
    }
    if (axis === shape.length - 1) {
      elements.push(...items)
      return undefined
    }
    for (const [index, item] of items.entries()) {
      if (!Array.isArray(item)) {
        return {
          path: `${at}[${index}]`,
          message: `must be an array of ${shape[axis + 1]} items, as shape ${formatShape(shape)} nests`,
        }
      }
      const problem = walk(item, axis + 1, `${at}[${index}]`)
      if (problem) return problem
    }
    return undefined
  }
  return walk(data, 0, path) ?? { elements, nested }
}

/** Every problem of one request input against its declared signature, and its tensor if none. */
function decodeInput(
  declared: ValueSignature,
  input: InferInput,
  path: string,
  problems: FieldError[],
): TensorData | undefined {
  const before = problems.length
  const type = elementTypeOf(input.datatype)
  if (type === undefined) {
    problems.push({
      path: `${path}.datatype`,
      message: `${input.datatype} is not supported; use one of ${DATATYPES.join(', ')}`,
    })
  } else if (type !== declared.type) {
    problems.push({
      path: `${path}.datatype`,
      message: `must be ${datatypeOf(declared.type)} for input '${declared.name}', got ${input.datatype}`,
    })
  }

  // A signature without a shape (rank 0 here) takes any, as feedMismatches has it.
  const rankFits = declared.shape.length === 0 || input.shape.length === declared.shape.length
  if (!rankFits) {
    problems.push({
      path: `${path}.shape`,
      message: `must have ${declared.shape.length} dims, as ${formatShape(declared.shape)}; got ${formatShape(input.shape)}`,
    })
  } else {
    declared.shape.forEach((dim, axis) => {
      const size = input.shape[axis]
      if (typeof dim === 'number' && dim >= 0 && size !== dim) {
        problems.push({
          path: `${path}.shape[${axis}]`,
          message: `must be ${dim}, as ${formatShape(declared.shape)}; got ${size}`,
        })
      }
    })
  }
  // With the wrong rank, how the data fits that shape is noise beside the shape problem.
  if (!rankFits) return undefined
  if (elementCount(input.shape) === 0) {
    problems.push({
      path: `${path}.shape`,
      message: 'describes an empty tensor; send one row or more',
    })
    return undefined
  }

  const flat = flatten(input.data, input.shape, `${path}.data`)
  if ('path' in flat) {
    problems.push(flat)
    return undefined
  }
  // Elements are judged against the declared type only when the request names that type:
  // against another one every element would be reported for one datatype mistake.
  if (type !== declared.type) return undefined

  let first: { index: number; message: string } | undefined
  let bad = 0
  flat.elements.forEach((value, index) => {
    const message = elementProblem(declared.type, value)
    if (message === undefined) return
    bad += 1
    first ??= { index, message }
  })
  if (first) {
    const at = flat.nested ? unravel(first.index, input.shape) : [first.index]
    problems.push({
      path: `${path}.data${at.map((index) => `[${index}]`).join('')}`,
      message:
        bad > 1 ? `${first.message} (and ${more(bad - 1, 'invalid element')})` : first.message,
    })
  }
  if (problems.length > before) return undefined
  return tensor(declared.type, input.shape, toData(declared.type, flat.elements) as never)
}

function requestedOutputProblems(
  signature: ModelSignature,
  requested: readonly { name: string }[],
): FieldError[] {
  const names = new Set(signature.outputs.map((output) => output.name))
  return requested.flatMap((output, index) =>
    names.has(output.name)
      ? []
      : [
          {
            path: `body.outputs[${index}].name`,
            message: `'${output.name}' is not an output of the model; its outputs: ${[...names].join(', ')}`,
          },
        ],
  )
}

/** The 422 a client reads: the first problems in `detail` too, since KServe clients show only that. */
function invalidRequest(problems: FieldError[]): ValidationFailed {
  const shown = problems.slice(0, 3).map((problem) => `${problem.path} ${problem.message}`)
  const more = problems.length > 3 ? `; and ${problems.length - 3} more` : ''
  return new ValidationFailed(
    problems,
    `The inference request does not fit the model: ${shown.join('; ')}${more}.`,
  )
}

/**
 * The feeds of an inference request for a model of `signature`. Checks every input (known
 * name, given once, datatype, rank and fixed sizes, data filling the shape, every element)
 * and the requested outputs, and throws one ValidationFailed listing all problems.
 */
export function decodeInferRequest(signature: ModelSignature, body: InferRequest): Feeds {
  const problems: FieldError[] = []
  const declared = new Map(signature.inputs.map((input) => [input.name, input]))
  const given = new Set<string>()
  const feeds: Feeds = {}
  body.inputs.forEach((input, index) => {
    const path = `body.inputs[${index}]`
    const spec = declared.get(input.name)
    if (spec === undefined) {
      problems.push({
        path: `${path}.name`,
        message: `'${input.name}' is not an input of the model; its inputs: ${[...declared.keys()].join(', ')}`,
      })
      return
    }
    if (given.has(input.name)) {
      problems.push({ path: `${path}.name`, message: `'${input.name}' is given twice` })
      return
    }
    given.add(input.name)
    const feed = decodeInput(spec, input, path, problems)
    if (feed) feeds[input.name] = feed
  })
  for (const input of signature.inputs) {
    if (!given.has(input.name)) {
      problems.push({
        path: 'body.inputs',
        message: `lacks '${input.name}' (${datatypeOf(input.type)} ${formatShape(input.shape)})`,
      })
    }
  }
  problems.push(...requestedOutputProblems(signature, body.outputs ?? []))
  if (problems.length > 0) throw invalidRequest(problems)
  return feeds
}

/** A tensor's elements as JSON values: 64-bit integers as numbers, BOOL as booleans. */
function jsonData(output: TensorData): unknown[] {
  switch (output.type) {
    case 'int64':
    case 'uint64':
      return Array.from(output.data as BigInt64Array | BigUint64Array, Number)
    case 'bool':
      return Array.from(output.data, (byte) => byte !== 0)
    case 'string':
      return [...output.data]
    default:
      return Array.from(output.data as ArrayLike<number>)
  }
}

export interface EncodeOptions {
  /** The request's `id`, echoed. */
  id?: string
  /** Output names to return, in this order; every output of the model when absent or empty. */
  requested?: readonly string[]
}

/** The inference response for the outputs a version computed. */
export function encodeInferResponse(
  served: ServedVersion,
  outputs: Feeds,
  { id, requested }: EncodeOptions = {},
): InferResponse {
  const problems = requestedOutputProblems(
    served.signature,
    (requested ?? []).map((name) => ({ name })),
  )
  if (problems.length > 0) throw invalidRequest(problems)
  const names =
    requested && requested.length > 0
      ? [...new Set(requested)]
      : served.signature.outputs.map((output) => output.name)
  return {
    model_name: served.name,
    model_version: served.version,
    ...(id === undefined ? {} : { id }),
    outputs: names.map((name): InferOutput => {
      const output = outputs[name]
      if (output === undefined) {
        throw new InferenceError(
          `Model ${served.name} ${served.version} did not produce '${name}'.`,
        )
      }
      return {
        name,
        datatype: datatypeOf(output.type),
        shape: [...output.dims],
        data: jsonData(output),
      }
    }),
  }
}

const metadataTensor = (value: ValueSignature): MetadataTensor => ({
  name: value.name,
  datatype: datatypeOf(value.type),
  shape: value.shape.map(protocolDim),
})

/** The model metadata document of a served version; `versions` lists every registered one. */
export function modelMetadata(served: ServedVersion, versions: readonly string[]): ModelMetadata {
  return {
    name: served.name,
    versions: [...versions],
    platform: PLATFORM,
    inputs: served.signature.inputs.map(metadataTensor),
    outputs: served.signature.outputs.map(metadataTensor),
  }
}
