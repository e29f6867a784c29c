import type { FieldError } from '../../shared/errors.js'
import type { Generation, ModelCard } from './card.js'
import { cardInconsistencies } from './card-consistency.js'
import { imageSignatureMismatches } from './images/card-checks.js'
import type { Dim, ModelSignature, ValueSignature } from './runtime/backend.js'

type CardDim = number | string

/** `[N, 4]`, with a dynamic unnamed dim shown as `?`. */
function formatShape(shape: readonly Dim[]): string {
  return `[${shape.map((dim) => (dim === -1 ? '?' : String(dim))).join(', ')}]`
}

function describe(value: ValueSignature): string {
  return `'${value.name}' (${value.type} ${formatShape(value.shape)})`
}

/** A graph dim that takes any size: a symbol such as `'N'`, or -1. */
const isFree = (dim: Dim) => typeof dim === 'string' || dim < 0

/**
 * How the card's declared shape disagrees with the graph's, axis by axis. A symbolic card dim
 * (the batch) needs a free graph dim, or batching would break; a fixed card dim fits a free
 * graph dim or the same size. A graph without a declared shape (rank 0 here) accepts any.
 */
function shapeMismatches(
  path: string,
  declared: readonly CardDim[],
  graph: ValueSignature,
  kind: 'input' | 'output',
): FieldError[] {
  if (graph.shape.length === 0) return []
  if (declared.length !== graph.shape.length) {
    return [
      {
        path,
        message: `has ${declared.length} dims ${formatShape(declared)}, the graph's ${kind} ${describe(graph)} has ${graph.shape.length}`,
      },
    ]
  }
  const problems: FieldError[] = []
  declared.forEach((dim, axis) => {
    const actual = graph.shape[axis] as Dim
    if (isFree(actual)) return
    if (typeof dim === 'string') {
      problems.push({
        path: `${path}[${axis}]`,
        message: `is '${dim}' (any size), but the graph's ${kind} ${describe(graph)} fixes axis ${axis} at ${actual}`,
      })
    } else if (dim !== actual) {
      problems.push({
        path: `${path}[${axis}]`,
        message: `is ${dim}, but the graph's ${kind} ${describe(graph)} has ${actual} on axis ${axis}`,
      })
    }
  })
  return problems
}

/**
 * Every way the card contradicts itself (see cardInconsistencies) or disagrees with a loaded
 * graph's signature: a declared tensor or output the graph lacks, a graph input the card does
 * not fill, element types, ranks, fixed sizes, column counts and label counts. Empty when the
 * card describes the graph. Graph outputs the card leaves out are not a mismatch: the server
 * ignores them.
 */
export function signatureMismatches(card: ModelCard, signature: ModelSignature): FieldError[] {
  const problems: FieldError[] = cardInconsistencies(card)
  if (card.generation) return [...problems, ...generationMismatches(card.generation, signature)]
  const graphInputs = new Map(signature.inputs.map((input) => [input.name, input]))
  const graphOutputs = new Map(signature.outputs.map((output) => [output.name, output]))
  const tensors = card.preprocessing.tensors

  tensors.forEach((tensor, index) => {
    const path = `card.preprocessing.tensors[${index}]`
    const graph = graphInputs.get(tensor.name)
    const graphLast = graph && graph.shape.length > 0 ? graph.shape.at(-1) : undefined
    const width = typeof graphLast === 'number' && graphLast >= 0 ? graphLast : tensor.shape.at(-1)
    if (typeof width === 'number' && width !== tensor.columns.length) {
      const of = width === graphLast && graph ? `the graph's input ${describe(graph)}` : 'the shape'
      problems.push({
        path: `${path}.columns`,
        message: `has ${tensor.columns.length} columns, but ${of} takes ${width} on its last axis`,
      })
    }
    if (!graph) {
      problems.push({
        path: `${path}.name`,
        message: `the graph has no input '${tensor.name}'; its inputs: ${signature.inputs.map(describe).join(', ') || 'none'}`,
      })
      return
    }
    if (graph.type !== tensor.dtype) {
      problems.push({
        path: `${path}.dtype`,
        message: `is ${tensor.dtype}, but the graph's input ${describe(graph)} is ${graph.type}`,
      })
    }
    problems.push(...shapeMismatches(`${path}.shape`, tensor.shape, graph, 'input'))
  })

  problems.push(...imageSignatureMismatches(card, signature))
  const declared = new Set(tensors.map((tensor) => tensor.name))
  for (const input of signature.inputs) {
    // An image card feeds its one input itself; imageSignatureMismatches named any other.
    if (!declared.has(input.name) && !card.image) {
      problems.push({
        path: 'card.preprocessing.tensors',
        message: `does not declare the graph's input ${describe(input)}, which every run must feed`,
      })
    }
  }

  card.outputs.forEach((output, index) => {
    const path = `card.outputs[${index}]`
    const graph = graphOutputs.get(output.name)
    if (!graph) {
      problems.push({
        path: `${path}.name`,
        message: `the graph has no output '${output.name}'; its outputs: ${signature.outputs.map(describe).join(', ') || 'none'}`,
      })
      return
    }
    if (graph.type !== output.dtype) {
      problems.push({
        path: `${path}.dtype`,
        message: `is ${output.dtype}, but the graph's output ${describe(graph)} is ${graph.type}`,
      })
    }
    problems.push(...shapeMismatches(`${path}.shape`, output.shape, graph, 'output'))
    // Class probabilities: one column per label. A label index output ([N]) has no class axis.
    const classes = graph.shape.length > 1 ? graph.shape.at(-1) : undefined
    if (output.labels && typeof classes === 'number' && classes >= 0) {
      if (output.labels.length !== classes) {
        problems.push({
          path: `${path}.labels`,
          message: `has ${output.labels.length} labels, but the graph's output ${describe(graph)} has ${classes} classes`,
        })
      }
    }
  })
  return problems
}

/**
 * A generating graph reads one tensor of character indexes, `[N, context_length]` int64, and
 * answers `[N, vocabulary]` float32 logits; nothing else may need feeding.
 */
function generationMismatches(generation: Generation, signature: ModelSignature): FieldError[] {
  const problems: FieldError[] = []
  const input = signature.inputs.find((value) => value.name === generation.input)
  const output = signature.outputs.find((value) => value.name === generation.output)
  if (input?.type !== 'int64') {
    problems.push({
      path: 'card.generation.input',
      message: `must name an int64 input of the graph; its inputs: ${signature.inputs.map(describe).join(', ') || 'none'}`,
    })
  } else {
    problems.push(
      ...shapeMismatches('card.generation.input', ['N', generation.context_length], input, 'input'),
    )
  }
  for (const other of signature.inputs) {
    if (other.name !== generation.input) {
      problems.push({
        path: 'card.generation.input',
        message: `is the only input generation feeds, but the graph also takes ${describe(other)}`,
      })
    }
  }
  if (output?.type !== 'float32') {
    problems.push({
      path: 'card.generation.output',
      message: `must name a float32 output of the graph; its outputs: ${signature.outputs.map(describe).join(', ') || 'none'}`,
    })
  } else {
    problems.push(
      ...shapeMismatches(
        'card.generation.output',
        ['N', generation.vocabulary.length],
        output,
        'output',
      ),
    )
  }
  return problems
}
