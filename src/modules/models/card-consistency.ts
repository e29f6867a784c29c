import type { FieldError } from '../../shared/errors.js'
import type { ModelCard, ModelInput, PreprocessingStep, TensorSpec } from './card.js'
import { imageCardProblems } from './images/card-checks.js'

/**
 * Every way a card that passes its schema contradicts itself: a model registered with such a
 * card would answer wrong (a standardisation shifted by one column, an input that never
 * reaches the graph) or fail every request. Checked at registration, so serving can trust the
 * card and never falls back to a made-up value. Paths follow the schema's: `card.inputs[2]`.
 */
export function cardInconsistencies(card: ModelCard): FieldError[] {
  const inputs = new Map(card.inputs.map((input) => [input.name, input]))
  return [
    ...card.inputs.flatMap((input, index) => inputProblems(input, `card.inputs[${index}]`)),
    ...duplicateInputs(card),
    ...card.preprocessing.tensors.flatMap((tensor, index) =>
      tensorProblems(tensor, `card.preprocessing.tensors[${index}]`, inputs),
    ),
    ...unfedInputs(card),
    ...card.preprocessing.steps.flatMap((step, index) =>
      stepProblems(step, `card.preprocessing.steps[${index}]`, inputs),
    ),
    ...disagreeingDefaults(card),
    ...taskProblems(card),
    ...imageCardProblems(card),
  ]
}

/**
 * A predictive card says what a request holds and what the graph answers; a text-generation
 * card reads a prompt, so it either runs a shipped graph (`generation`) or calls an
 * OpenAI-compatible server, and a KServe upstream answers tensors, never text.
 */
function taskProblems(card: ModelCard): FieldError[] {
  const problems: FieldError[] = []
  const kind = card.backend?.kind
  if (card.task !== 'text-generation') {
    // An image card has no named inputs or tensors: card.image stands for them.
    if (card.inputs.length === 0 && !card.image)
      problems.push({ path: 'card.inputs', message: 'must not be empty' })
    if (card.preprocessing.tensors.length === 0 && !card.image) {
      problems.push({ path: 'card.preprocessing.tensors', message: 'must not be empty' })
    }
    if (card.outputs.length === 0)
      problems.push({ path: 'card.outputs', message: 'must not be empty' })
    if (kind === 'openai') {
      problems.push({
        path: 'card.backend.kind',
        message: `is openai, which generates text: the task ${card.task} needs kserve-v2`,
      })
    }
    if (card.generation) {
      problems.push({ path: 'card.generation', message: 'is for text-generation models only' })
    }
    return problems
  }
  if (kind === 'kserve-v2') {
    problems.push({
      path: 'card.backend.kind',
      message: 'is kserve-v2, which answers tensors: a text-generation model needs openai',
    })
  }
  if (kind === undefined && !card.generation) {
    problems.push({
      path: 'card.generation',
      message: 'is required for a text-generation model that is not served by an openai backend',
    })
  }
  if (kind !== undefined && card.generation) {
    problems.push({ path: 'card.generation', message: 'must be absent for a remote backend' })
  }
  if (card.generation && !card.generation.vocabulary.includes(card.generation.pad)) {
    problems.push({ path: 'card.generation.pad', message: 'must be one of the vocabulary' })
  }
  return problems
}

/** What is wrong with `value` as a value of `input`; undefined when it could be sent. */
function misfit(input: ModelInput, value: number | string): string | undefined {
  if (input.type === 'category') {
    if (typeof value !== 'string') return 'must be a string: the input is a category'
    if (input.categories && !input.categories.includes(value)) {
      return `must be one of the input's categories: ${input.categories.join(', ')}`
    }
    return undefined
  }
  if (typeof value !== 'number') return `must be a number: the input is ${input.type}`
  if (input.type === 'integer' && !Number.isInteger(value)) {
    return 'must be an integer: the input is integer'
  }
  // Bounds that contradict each other are reported once, on the input itself.
  if (input.minimum !== undefined && input.maximum !== undefined && input.minimum > input.maximum) {
    return undefined
  }
  if (input.minimum !== undefined && value < input.minimum) {
    return `must be at least the input's minimum, ${input.minimum}`
  }
  if (input.maximum !== undefined && value > input.maximum) {
    return `must be at most the input's maximum, ${input.maximum}`
  }
  return undefined
}

function inputProblems(input: ModelInput, path: string): FieldError[] {
  const problems: FieldError[] = []
  const { minimum, maximum } = input
  if (minimum !== undefined && maximum !== undefined && minimum > maximum) {
    problems.push({
      path: `${path}.minimum`,
      message: `is ${minimum}, above the maximum ${maximum}: no value could pass`,
    })
  }
  if (input.type === 'category' && (minimum !== undefined || maximum !== undefined)) {
    problems.push({ path, message: 'is a category: minimum and maximum do not apply' })
  }
  if (input.type !== 'category' && input.categories !== undefined) {
    problems.push({ path: `${path}.categories`, message: `does not apply to a ${input.type}` })
  }
  const categories = input.categories ?? []
  categories.forEach((category, k) => {
    if (categories.indexOf(category) !== k) {
      problems.push({ path: `${path}.categories[${k}]`, message: `repeats '${category}'` })
    }
  })
  if (input.default !== undefined) {
    const problem = misfit(input, input.default)
    if (problem) problems.push({ path: `${path}.default`, message: problem })
  }
  return problems
}

function duplicateInputs(card: ModelCard): FieldError[] {
  const first = new Map<string, number>()
  return card.inputs.flatMap((input, index) => {
    const earlier = first.get(input.name)
    if (earlier === undefined) {
      first.set(input.name, index)
      return []
    }
    return [{ path: `card.inputs[${index}].name`, message: `repeats inputs[${earlier}]'s name` }]
  })
}

/** `columns[k]` names no input, or an input already named at an earlier position. */
function columnProblems(
  columns: readonly string[],
  path: string,
  inputs: ReadonlyMap<string, ModelInput>,
): FieldError[] {
  return columns.flatMap((column, k) => {
    if (!inputs.has(column))
      return [{ path: `${path}[${k}]`, message: `'${column}' is not an input` }]
    const earlier = columns.indexOf(column)
    if (earlier !== k) {
      return [{ path: `${path}[${k}]`, message: `repeats '${column}' (columns[${earlier}])` }]
    }
    return []
  })
}

/** Whether a tensor can carry a missing value itself (NaN in float32, '' in string). */
const carriesMissing = (tensor: TensorSpec) =>
  (tensor.dtype === 'float32' && tensor.missing === 'NaN') ||
  (tensor.dtype === 'string' && tensor.missing === '')

function tensorProblems(
  tensor: TensorSpec,
  path: string,
  inputs: ReadonlyMap<string, ModelInput>,
): FieldError[] {
  const problems = columnProblems(tensor.columns, `${path}.columns`, inputs)
  tensor.columns.forEach((column, k) => {
    const input = inputs.get(column)
    if (!input) return
    const at = `${path}.columns[${k}]`
    const text = input.type === 'category'
    if (text !== (tensor.dtype === 'string')) {
      problems.push({
        path: at,
        message: `'${column}' is ${text ? 'a category' : `a ${input.type}`}, which a ${tensor.dtype} tensor cannot hold`,
      })
    } else if (tensor.dtype === 'int64' && input.type !== 'integer') {
      problems.push({
        path: at,
        message: `'${column}' is a number, which an int64 tensor cannot hold`,
      })
    }
    if (!input.required && input.default === undefined && !carriesMissing(tensor)) {
      problems.push({
        path: at,
        message: `optional input '${column}' feeds a ${tensor.dtype} tensor whose missing marker '${tensor.missing}' it cannot carry: give the input a default`,
      })
    }
  })
  return problems
}

/** An input no tensor carries is validated, required perhaps, and never reaches the graph. */
function unfedInputs(card: ModelCard): FieldError[] {
  const fed = new Set(card.preprocessing.tensors.flatMap((tensor) => tensor.columns))
  return card.inputs.flatMap((input, index) =>
    fed.has(input.name)
      ? []
      : [
          {
            path: `card.inputs[${index}].name`,
            message: `'${input.name}' is in no tensor's columns: it would never reach the graph`,
          },
        ],
  )
}

/** `values` must hold one entry per column. */
function perColumn(
  step: PreprocessingStep,
  path: string,
  field: string,
  values: readonly unknown[],
): FieldError[] {
  if (values.length === step.columns.length) return []
  return [
    {
      path: `${path}.${field}`,
      message: `has ${values.length} entries for ${step.columns.length} columns: one per column`,
    },
  ]
}

function stepProblems(
  step: PreprocessingStep,
  path: string,
  inputs: ReadonlyMap<string, ModelInput>,
): FieldError[] {
  const problems = columnProblems(step.columns, `${path}.columns`, inputs)
  const inputOf = (k: number) => inputs.get(step.columns[k] as string)
  if (step.step === 'impute') {
    problems.push(...perColumn(step, path, 'values', step.values))
    step.values.forEach((value, k) => {
      const input = inputOf(k)
      const problem = input && misfit(input, value)
      if (problem) problems.push({ path: `${path}.values[${k}]`, message: problem })
    })
  } else if (step.step === 'standardize') {
    problems.push(...perColumn(step, path, 'mean', step.mean))
    problems.push(...perColumn(step, path, 'scale', step.scale))
    step.scale.forEach((scale, k) => {
      if (scale === 0) {
        problems.push({
          path: `${path}.scale[${k}]`,
          message: 'is 0: every value would divide by it',
        })
      }
    })
    step.columns.forEach((column, k) => {
      if (inputOf(k)?.type === 'category') {
        problems.push({
          path: `${path}.columns[${k}]`,
          message: `'${column}' is a category, not a number`,
        })
      }
    })
  } else {
    if (!step.in_graph) {
      problems.push({
        path: `${path}.in_graph`,
        message: 'a one_hot step must be in the graph: the server sends one column per input',
      })
    }
    problems.push(...perColumn(step, path, 'categories', step.categories))
    step.columns.forEach((column, k) => {
      const input = inputOf(k)
      if (!input) return
      if (input.type !== 'category') {
        problems.push({ path: `${path}.columns[${k}]`, message: `'${column}' is not a category` })
        return
      }
      const encoded = step.categories[k] ?? []
      const unknown = (input.categories ?? []).filter((category) => !encoded.includes(category))
      if (unknown.length > 0) {
        problems.push({
          path: `${path}.categories[${k}]`,
          message: `lacks ${unknown.map((category) => `'${category}'`).join(', ')}, which input '${column}' accepts`,
        })
      }
    })
  }
  return problems
}

/**
 * A default and an imputed value say the same thing: what the model uses for a missing input.
 * Which one wins would depend on the tensor's missing marker, so the two must agree.
 */
function disagreeingDefaults(card: ModelCard): FieldError[] {
  const problems: FieldError[] = []
  card.inputs.forEach((input, index) => {
    if (input.default === undefined) return
    card.preprocessing.steps.forEach((step, s) => {
      if (step.step !== 'impute') return
      const k = step.columns.indexOf(input.name)
      const imputed = step.values[k]
      if (k < 0 || imputed === undefined || imputed === input.default) return
      problems.push({
        path: `card.inputs[${index}].default`,
        message: `is ${JSON.stringify(input.default)}, but preprocessing.steps[${s}] imputes ${JSON.stringify(imputed)}: they must agree`,
      })
    })
  })
  return problems
}
