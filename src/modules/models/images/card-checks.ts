import type { FieldError } from '../../../shared/errors.js'
import type { ModelCard } from '../card.js'
import type { ModelSignature, ValueSignature } from '../runtime/backend.js'

/**
 * The rules an image card adds to a predictive one. The picture is the only input, so the
 * card declares no named inputs and no tensors of its own; the per-channel numbers must
 * cover every channel; and top-k needs class names, which only a labelled float32 output
 * gives.
 */
export function imageCardProblems(card: ModelCard): FieldError[] {
  const image = card.image
  if (!image) return []
  const problems: FieldError[] = []
  if (card.task !== 'classification') {
    problems.push({
      path: 'card.task',
      message: `is ${card.task}, but an image model answers labels: it must be classification`,
    })
  }
  if (card.inputs.length > 0) {
    problems.push({
      path: 'card.inputs',
      message: 'must be empty for an image model: the picture is its only input',
    })
  }
  if (card.preprocessing.tensors.length > 0 || card.preprocessing.steps.length > 0) {
    problems.push({
      path: 'card.preprocessing',
      message: 'must have no tensors or steps for an image model: card.image describes them',
    })
  }
  for (const field of ['mean', 'std'] as const) {
    if (image[field].length !== image.channels) {
      problems.push({
        path: `card.image.${field}`,
        message: `has ${image[field].length} entries for ${image.channels} channels: one per channel`,
      })
    }
  }
  image.std.forEach((value, c) => {
    if (value === 0) {
      problems.push({
        path: `card.image.std[${c}]`,
        message: 'is 0: every value would divide by it',
      })
    }
  })
  if (!card.outputs.some((output) => output.dtype === 'float32' && output.labels)) {
    problems.push({
      path: 'card.outputs',
      message: `must include a float32 output with labels: the ${image.scores} of each class`,
    })
  }
  return problems
}

const dimText = (dim: number | string) => (dim === -1 ? '?' : String(dim))

/**
 * The graph must read one float32 picture tensor of the card's layout and size, batch first;
 * nothing else may need feeding. Outputs are checked as for any predictive card.
 */
export function imageSignatureMismatches(card: ModelCard, signature: ModelSignature): FieldError[] {
  const image = card.image
  if (!image) return []
  const problems: FieldError[] = []
  const describe = (value: ValueSignature) =>
    `'${value.name}' (${value.type} [${value.shape.map(dimText).join(', ')}])`
  const input = signature.inputs.find((value) => value.name === image.input)
  if (!input) {
    problems.push({
      path: 'card.image.input',
      message: `the graph has no input '${image.input}'; its inputs: ${signature.inputs.map(describe).join(', ') || 'none'}`,
    })
  } else {
    if (input.type !== 'float32') {
      problems.push({
        path: 'card.image.input',
        message: `names ${describe(input)}, but pictures are fed as float32`,
      })
    }
    const expected =
      image.layout === 'NCHW'
        ? [image.channels, image.height, image.width]
        : [image.height, image.width, image.channels]
    const shape = input.shape
    // A graph without a declared shape accepts any; otherwise batch first, then the picture.
    if (shape.length > 0) {
      const batchFixed = typeof shape[0] === 'number' && (shape[0] as number) >= 0
      const fits =
        shape.length === 4 &&
        !batchFixed &&
        expected.every((size, axis) => {
          const dim = shape[axis + 1] as number | string
          return typeof dim === 'string' || dim < 0 || dim === size
        })
      if (!fits) {
        problems.push({
          path: 'card.image',
          message: `describes [N, ${expected.join(', ')}] (${image.layout}), but the graph's input is ${describe(input)}`,
        })
      }
    }
  }
  for (const other of signature.inputs) {
    if (other.name !== image.input) {
      problems.push({
        path: 'card.image.input',
        message: `is the only input an image model feeds, but the graph also takes ${describe(other)}`,
      })
    }
  }
  return problems
}
