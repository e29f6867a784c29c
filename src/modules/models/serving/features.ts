import { childPath } from '../../../platform/validation.js'
import type { FieldError } from '../../../shared/errors.js'
import type { ModelCard, ModelInput, ModelOutput, TensorSpec } from '../card.js'
import {
  allocateData,
  type Feeds,
  InferenceError,
  type TensorData,
  tensor,
} from '../runtime/backend.js'

/**
 * How a model card turns into request validation, input tensors and readable predictions.
 * Pure functions of the card: no I/O, no state, the same answer for the same arguments.
 */

export interface Prediction {
  prediction: number | string
  probabilities?: Record<string, number>
  classIndex?: number
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Own properties only: an input may be called `constructor`, and `{}` must not answer with
 * Object.prototype's.
 */
const own = (record: Record<string, unknown>, key: string): unknown =>
  Object.hasOwn(record, key) ? record[key] : undefined

/** Absent and explicit null both mean "missing" (null is how JSON spells it on purpose). */
const isMissing = (value: unknown): value is null | undefined =>
  value === undefined || value === null

const withUnit = (bound: number, unit: string | undefined) =>
  unit === undefined ? String(bound) : `${bound} (${unit})`

/** What is wrong with one present value of an input; undefined when it is fine. */
function problemWith(input: ModelInput, value: unknown): string | undefined {
  if (input.type === 'category') {
    if (typeof value !== 'string') return 'must be a string'
    if (input.categories !== undefined && !input.categories.includes(value)) {
      return `must be one of: ${input.categories.join(', ')}`
    }
    return undefined
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return input.type === 'integer' ? 'must be an integer' : 'must be a number'
  }
  if (input.type === 'integer' && !Number.isInteger(value)) return 'must be an integer'
  if (input.minimum !== undefined && value < input.minimum) {
    return `must be at least ${withUnit(input.minimum, input.unit)}`
  }
  if (input.maximum !== undefined && value > input.maximum) {
    return `must be at most ${withUnit(input.maximum, input.unit)}`
  }
  return undefined
}

/** A card is never changed once served, so its input names are gathered once, not per instance. */
const inputNames = new WeakMap<ModelCard, ReadonlySet<string>>()

function inputNamesOf(card: ModelCard): ReadonlySet<string> {
  let names = inputNames.get(card)
  if (!names) {
    names = new Set(card.inputs.map((input) => input.name))
    inputNames.set(card, names)
  }
  return names
}

/**
 * Every problem with one instance's inputs, named below `path` (e.g. 'body.inputs' or
 * 'body.instances[3]') as body validation names places: 'body.inputs.sepal_length', and
 * 'body.inputs["a.b"]' for a key that is not a plain name.
 */
export function checkInputs(card: ModelCard, inputs: unknown, path: string): FieldError[] {
  if (!isRecord(inputs)) return [{ path, message: 'must be an object' }]
  const errors: FieldError[] = []
  const known = inputNamesOf(card)
  for (const key of Object.keys(inputs)) {
    if (!known.has(key)) {
      errors.push({ path: childPath(path, key), message: `is not an input of model ${card.name}` })
    }
  }
  for (const input of card.inputs) {
    const value = own(inputs, input.name)
    let message: string | undefined
    if (value === undefined) message = input.required ? 'is required' : undefined
    else if (value === null) message = input.required ? 'is required and cannot be null' : undefined
    else message = problemWith(input, value)
    if (message !== undefined) errors.push({ path: childPath(path, input.name), message })
  }
  return errors
}

type Cell = number | string | null

/** Registration refuses such a card (cardInconsistencies); one stored before is not guessed at. */
const contradiction = (card: ModelCard, what: string) =>
  new InferenceError(`Model ${card.name} ${card.version}: its card contradicts itself: ${what}.`)

function entryOf<T>(card: ModelCard, values: readonly T[], k: number, what: string): T {
  const value = values[k]
  if (value === undefined) throw contradiction(card, `no ${what} for column ${k}`)
  return value
}

/** One caller step on one column: imputation of a missing cell, or standardisation of a number. */
type CellStep = (cell: Cell) => Cell

/**
 * The preprocessing steps the graph leaves to the caller (`in_graph: false`), by column, in card
 * order. Imputation and standardisation keep a column's place, so they fit the tensor layout;
 * one-hot encoding would widen it, which the layout (one column per input) cannot express. A
 * step's parameters are read when a cell needs them, so a card missing one that no row uses
 * still serves.
 */
function callerSteps(card: ModelCard, columns: ReadonlySet<string>): Map<string, CellStep[]> {
  const steps = new Map<string, CellStep[]>()
  for (const step of card.preprocessing.steps) {
    if (step.in_graph) continue
    if (step.step === 'one_hot') {
      throw new InferenceError(
        `Model ${card.name}: a one_hot step outside the graph cannot be applied; export it inside the graph.`,
      )
    }
    step.columns.forEach((column, k) => {
      if (!columns.has(column)) throw contradiction(card, `step column '${column}' is in no tensor`)
      const apply: CellStep =
        step.step === 'impute'
          ? (cell) => (cell === null ? entryOf(card, step.values, k, 'impute value') : cell)
          : (cell) =>
              typeof cell === 'number'
                ? (cell - entryOf(card, step.mean, k, 'mean')) /
                  entryOf(card, step.scale, k, 'scale')
                : cell
      steps.set(column, [...(steps.get(column) ?? []), apply])
    })
  }
  return steps
}

/**
 * The cell of a missing input: the tensor's own marker when its dtype can hold it, else the card's
 * default; undefined when there is neither.
 */
function missingCell(
  card: ModelCard,
  spec: TensorSpec,
  column: string,
): number | string | undefined {
  if (spec.dtype === 'float32' && spec.missing === 'NaN') return Number.NaN
  if (spec.dtype === 'string' && spec.missing === '') return ''
  return card.inputs.find((input) => input.name === column)?.default
}

/** How one tensor column is read from an instance. */
interface ColumnPlan {
  input: string
  steps: readonly CellStep[]
  missing: number | string | undefined
}

interface TensorPlan {
  spec: TensorSpec
  columns: ColumnPlan[]
}

/** What a card's tensors are made of, worked out once per card; or why its rows cannot be. */
type EncodingPlan = { tensors: TensorPlan[] } | { error: unknown }

const plans = new WeakMap<ModelCard, EncodingPlan>()

function encodingPlan(card: ModelCard): EncodingPlan {
  let plan = plans.get(card)
  if (!plan) {
    try {
      const { tensors } = card.preprocessing
      const steps = callerSteps(card, new Set(tensors.flatMap((spec) => spec.columns)))
      plan = {
        tensors: tensors.map((spec) => ({
          spec,
          columns: spec.columns.map((column) => ({
            input: column,
            steps: steps.get(column) ?? [],
            missing: missingCell(card, spec, column),
          })),
        })),
      }
    } catch (error) {
      plan = { error }
    }
    plans.set(card, plan)
  }
  return plan
}

/** One cell of one instance, after the caller steps; a missing cell is the column's marker. */
function cellOf(
  card: ModelCard,
  spec: TensorSpec,
  column: ColumnPlan,
  inputs: Record<string, unknown>,
): number | string {
  const value = own(inputs, column.input)
  let cell: Cell = isMissing(value) ? null : (value as number | string)
  for (const step of column.steps) cell = step(cell)
  if (cell !== null) return cell
  if (column.missing === undefined) {
    throw new InferenceError(
      `Model ${card.name}: tensor '${spec.name}' (${spec.dtype}) cannot carry a missing '${column.input}' as '${spec.missing}', and the input has no default.`,
    )
  }
  return column.missing
}

/** Fills one tensor's data in place, row after row: no per-row containers. */
function encodeTensor(
  card: ModelCard,
  { spec, columns }: TensorPlan,
  rows: ReadonlyArray<Record<string, unknown>>,
): TensorData {
  const width = columns.length
  const data = allocateData(spec.dtype, rows.length * width)
  let at = 0
  for (const inputs of rows) {
    for (const column of columns) {
      const cell = cellOf(card, spec, column, inputs)
      if (Array.isArray(data)) {
        data[at] = String(cell)
      } else if (typeof cell !== 'number') {
        throw new InferenceError(
          `Model ${card.name}: '${column.input}' is text but tensor '${spec.name}' is ${spec.dtype}.`,
        )
      } else if (data instanceof BigInt64Array) {
        if (!Number.isInteger(cell)) {
          throw new InferenceError(
            `Model ${card.name}: '${column.input}' is ${cell}, not an integer, but tensor '${spec.name}' is int64.`,
          )
        }
        data[at] = BigInt(cell)
      } else {
        data[at] = cell
      }
      at++
    }
  }
  return tensor(spec.dtype, [rows.length, width], data)
}

/**
 * Tensors for rows that passed checkInputs, per card.preprocessing.tensors: dims [rows,
 * columns.length]; float32 for number/integer inputs (missing -> NaN when tensor.missing is
 * 'NaN'), int64 (BigInt), string for categories (missing -> '').
 */
export function encodeRows(card: ModelCard, rows: ReadonlyArray<Record<string, unknown>>): Feeds {
  const plan = encodingPlan(card)
  if ('error' in plan) {
    if (rows.length > 0) throw plan.error
    return Object.fromEntries(
      card.preprocessing.tensors.map((spec) => [
        spec.name,
        tensor(spec.dtype, [0, spec.columns.length], allocateData(spec.dtype, 0)),
      ]),
    )
  }
  const feeds: Feeds = {}
  for (const tensorPlan of plan.tensors) {
    feeds[tensorPlan.spec.name] = encodeTensor(card, tensorPlan, rows)
  }
  return feeds
}

/** The output's values, checked to hold `width` values for each of `rows` rows. */
function valuesOf(
  card: ModelCard,
  output: ModelOutput,
  outputs: Feeds,
  rows: number,
  width: number,
): ArrayLike<number | bigint | string | boolean> {
  const value = outputs[output.name]
  if (value === undefined) {
    throw new InferenceError(`Model ${card.name} did not answer its output '${output.name}'.`)
  }
  const [count, ...rest] = value.dims
  const actualWidth = rest.reduce((a, b) => a * b, 1)
  if (count !== rows || actualWidth !== width || value.data.length !== rows * width) {
    throw new InferenceError(
      `Model ${card.name}: output '${output.name}' has dims [${value.dims.join(', ')}], expected ${rows} rows of ${width}.`,
    )
  }
  return value.data as ArrayLike<number | bigint | string | boolean>
}

function finite(card: ModelCard, value: number | bigint | string | boolean | undefined): number {
  const number = Number(value)
  if (value === undefined || !Number.isFinite(number)) {
    throw new InferenceError(`Model ${card.name} answered a value that is not a finite number.`)
  }
  return number
}

/** Label -> probability of one row. */
function probabilitiesOf(
  card: ModelCard,
  labels: readonly string[],
  scores: ArrayLike<number | bigint | string | boolean>,
  start: number,
): Record<string, number> {
  const probabilities: Record<string, number> = {}
  for (let k = 0; k < labels.length; k++) {
    const label = labels[k] as string
    const value = finite(card, scores[start + k])
    // Assigning `__proto__` would set the prototype instead of adding the label.
    if (label === '__proto__') {
      Object.defineProperty(probabilities, label, { value, enumerable: true, writable: true })
    } else {
      probabilities[label] = value
    }
  }
  return probabilities
}

/** The column of the highest score in one row; the first one on a tie. */
function argmax(
  scores: ArrayLike<number | bigint | string | boolean>,
  start: number,
  width: number,
): number {
  let best = 0
  for (let k = 1; k < width; k++) {
    if (Number(scores[start + k]) > Number(scores[start + best])) best = k
  }
  return best
}

function decodeClassification(card: ModelCard, outputs: Feeds, rows: number): Prediction[] {
  const scores = card.outputs.find((output) => output.dtype === 'float32' && output.labels)
  const index = card.outputs.find((output) => output.dtype === 'int64')
  const labels = scores?.labels ?? index?.labels
  if (scores === undefined && index === undefined) {
    throw new InferenceError(
      `Model ${card.name} is a classifier without a labelled float32 or an int64 output.`,
    )
  }
  const width = scores?.labels?.length ?? 0
  const scoreData = scores && valuesOf(card, scores, outputs, rows, width)
  const indexData = index && valuesOf(card, index, outputs, rows, 1)
  const predictions: Prediction[] = new Array(rows)
  for (let i = 0; i < rows; i++) {
    const probabilities =
      scoreData && scores?.labels
        ? probabilitiesOf(card, scores.labels, scoreData, i * width)
        : undefined
    const classIndex = indexData
      ? finite(card, indexData[i])
      : argmax(scoreData ?? [], i * width, width)
    const label = labels === undefined ? classIndex : labels[classIndex]
    if (label === undefined) {
      throw new InferenceError(
        `Model ${card.name} answered class ${classIndex}, which has no label.`,
      )
    }
    const prediction: Prediction = { prediction: label, classIndex }
    if (probabilities !== undefined) prediction.probabilities = probabilities
    predictions[i] = prediction
  }
  return predictions
}

/**
 * One Prediction per row from the graph's outputs. Classification: the output with labels and
 * dtype float32 gives probabilities (label -> p, as JS numbers), the int64 output (dims [N] or
 * [N,1]) gives classIndex and prediction = labels[classIndex]; if there is no int64 output use
 * argmax of probabilities. Regression: prediction is the first float32 output's value of that row
 * (dims [N] or [N,1]).
 */
export function decodeRows(card: ModelCard, outputs: Feeds, rows: number): Prediction[] {
  if (card.task === 'classification') return decodeClassification(card, outputs, rows)
  const output = card.outputs.find((candidate) => candidate.dtype === 'float32')
  if (output === undefined) {
    throw new InferenceError(`Model ${card.name} is a regression without a float32 output.`)
  }
  const values = valuesOf(card, output, outputs, rows, 1)
  return Array.from({ length: rows }, (_, i) => ({ prediction: finite(card, values[i]) }))
}

/**
 * A canonical string of an instance's inputs, for the prediction cache key: inputs in card
 * order, absent optional inputs and explicit null treated the same, numbers in a stable form
 * (1 and 1.0 equal). Keys the card does not know are left out: validation refuses them first.
 * An absent input is not equated with its card default: the key follows what the graph is
 * sent, not what it is documented to do.
 */
export function canonicalInputs(card: ModelCard, inputs: Record<string, unknown>): string {
  const present = card.inputs.flatMap((input) => {
    const value = own(inputs, input.name)
    // JSON.stringify writes every number in its shortest round-trip form, -0 as 0.
    return isMissing(value) ? [] : [[input.name, value] as const]
  })
  return JSON.stringify(Object.fromEntries(present))
}

function inputJsonSchema(input: ModelInput): Record<string, unknown> {
  const base = input.type === 'category' ? 'string' : input.type
  // An optional input may be sent as null, meaning missing; checkInputs takes it the same way.
  const schema: Record<string, unknown> = { type: input.required ? base : [base, 'null'] }
  schema.description =
    input.unit === undefined ? input.description : `${input.description} (${input.unit})`
  if (input.minimum !== undefined) schema.minimum = input.minimum
  if (input.maximum !== undefined) schema.maximum = input.maximum
  if (input.categories !== undefined) {
    schema.enum = input.required ? [...input.categories] : [...input.categories, null]
  }
  if (input.default !== undefined) schema.default = input.default
  return schema
}

/**
 * JSON Schema (plain object, OpenAPI 3.1 compatible) of one instance's inputs: type number/integer
 * with minimum/maximum, enum for categories, description incl. unit, default, required list,
 * additionalProperties false. Used in OpenAPI docs.
 */
export function inputsJsonSchema(card: ModelCard): Record<string, unknown> {
  return {
    type: 'object',
    description: `Inputs of model ${card.name}.`,
    properties: Object.fromEntries(
      card.inputs.map((input) => [input.name, inputJsonSchema(input)]),
    ),
    required: card.inputs.filter((input) => input.required).map((input) => input.name),
    additionalProperties: false,
  }
}
