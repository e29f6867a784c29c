import { beforeAll, describe, expect, it } from 'vitest'
import { shippedBytes, shippedCard } from '../../../test/models.js'
import type { ModelCard } from './card.js'
import type { ModelSignature } from './runtime/backend.js'
import { createOnnxBackend } from './runtime/onnx-backend.js'
import { signatureMismatches } from './signature.js'

const SHIPPED = ['iris', 'car-price'] as const
const cards = Object.fromEntries(SHIPPED.map((name) => [name, shippedCard(name)])) as Record<
  (typeof SHIPPED)[number],
  ModelCard
>
const signatures = {} as Record<(typeof SHIPPED)[number], ModelSignature>

beforeAll(async () => {
  const backend = createOnnxBackend({ intraOpNumThreads: 1 })
  for (const name of SHIPPED) {
    const model = await backend.load(shippedBytes(name))
    signatures[name] = model.signature
    await model.release()
  }
})

/** A deep copy of a shipped card, changed by `edit`. */
function cardOf(name: (typeof SHIPPED)[number], edit: (card: ModelCard) => void = () => {}) {
  const card = structuredClone(cards[name])
  edit(card)
  return card
}

const paths = (card: ModelCard, signature: ModelSignature) =>
  signatureMismatches(card, signature).map((mismatch) => mismatch.path)

describe('signatureMismatches', () => {
  it.each(SHIPPED)('finds nothing wrong with the shipped %s card and graph', (name) => {
    expect(signatureMismatches(cards[name], signatures[name])).toEqual([])
  })

  it('when the card belongs to another graph, then it lists every missing input and output', () => {
    const mismatches = signatureMismatches(cards['car-price'], signatures.iris)
    expect(mismatches.map((mismatch) => mismatch.path)).toEqual([
      'card.preprocessing.tensors[0].name',
      'card.preprocessing.tensors[1].name',
      'card.preprocessing.tensors',
      'card.outputs[0].name',
    ])
    expect(mismatches[0]?.message).toMatch(/no input 'numeric'.*'float_input' \(float32 \[N, 4\]\)/)
    expect(mismatches[2]?.message).toMatch(/does not declare the graph's input 'float_input'/)
    expect(mismatches[3]?.message).toMatch(/no output 'price'/)
  })

  it('when a tensor has one column too few, then it names the column count', () => {
    const card = cardOf('iris', (c) => {
      const tensor = c.preprocessing.tensors[0] as ModelCard['preprocessing']['tensors'][0]
      tensor.columns = tensor.columns.slice(0, 3)
    })
    const mismatches = signatureMismatches(card, signatures.iris)
    expect(mismatches).toEqual([
      { path: 'card.inputs[3].name', message: expect.stringMatching(/never reach the graph/) },
      {
        path: 'card.preprocessing.tensors[0].columns',
        message: expect.stringMatching(/has 3 columns, but the graph's input .* takes 4/),
      },
    ])
  })

  it('when the declared width and dtype are wrong, then it reports shape, columns and dtype', () => {
    const card = cardOf('car-price', (c) => {
      const categorical = c.preprocessing.tensors[1] as ModelCard['preprocessing']['tensors'][0]
      categorical.dtype = 'float32'
      categorical.shape = ['N', 7]
      categorical.columns = categorical.columns.slice(0, 7)
    })
    expect(paths(card, signatures['car-price'])).toEqual([
      ...Array.from({ length: 7 }, (_, k) => `card.preprocessing.tensors[1].columns[${k}]`),
      'card.inputs[15].name',
      'card.preprocessing.tensors[1].columns',
      'card.preprocessing.tensors[1].dtype',
      'card.preprocessing.tensors[1].shape[1]',
    ])
  })

  it('when a column names no input, then it points at that column', () => {
    const card = cardOf('iris', (c) => {
      ;(c.preprocessing.tensors[0] as { columns: string[] }).columns[2] = 'petal_area'
    })
    expect(paths(card, signatures.iris)).toEqual([
      'card.preprocessing.tensors[0].columns[2]',
      'card.inputs[2].name',
    ])
  })

  it('when outputs differ in dtype, rank and label count, then each is listed', () => {
    const card = cardOf('iris', (c) => {
      const [probabilities, label] = c.outputs as [ModelCard['outputs'][0], ModelCard['outputs'][0]]
      probabilities.labels = ['setosa', 'versicolor']
      label.dtype = 'float32'
      label.shape = ['N', 1]
    })
    expect(paths(card, signatures.iris)).toEqual([
      'card.outputs[0].labels',
      'card.outputs[1].dtype',
      'card.outputs[1].shape',
    ])
  })

  it('when the graph fixes the batch dim the card leaves free, then the batch axis is a mismatch', () => {
    const signature: ModelSignature = {
      inputs: [{ name: 'float_input', type: 'float32', shape: [1, 4] }],
      outputs: signatures.iris.outputs,
    }
    expect(paths(cards.iris, signature)).toEqual(['card.preprocessing.tensors[0].shape[0]'])
  })

  it('when the graph leaves dims dynamic (-1 or symbolic), then a fixed card dim fits them', () => {
    const signature: ModelSignature = {
      inputs: [{ name: 'float_input', type: 'float32', shape: [-1, -1] }],
      outputs: [
        { name: 'probabilities', type: 'float32', shape: ['batch', 'classes'] },
        { name: 'label', type: 'int64', shape: [-1] },
      ],
    }
    expect(signatureMismatches(cards.iris, signature)).toEqual([])
  })

  it('when a step would have to run outside the graph but cannot, then the card is refused', () => {
    const card = cardOf('car-price', (edited) => {
      const oneHot = edited.preprocessing.steps.findIndex((step) => step.step === 'one_hot')
      ;(edited.preprocessing.steps[oneHot] as { in_graph: boolean }).in_graph = false
    })
    const oneHot = card.preprocessing.steps.findIndex((step) => step.step === 'one_hot')
    expect(paths(card, signatures['car-price'])).toEqual([
      `card.preprocessing.steps[${oneHot}].in_graph`,
    ])
  })

  it('when an optional input without default feeds an int64 tensor, then the card is refused', () => {
    const card = cardOf('iris', (edited) => {
      ;(edited.preprocessing.tensors[0] as { dtype: string }).dtype = 'int64'
      for (const input of edited.inputs) input.type = 'integer'
      ;(edited.inputs[1] as { required: boolean }).required = false
    })
    const int64 = { ...signatures.iris, inputs: [{ ...signatures.iris.inputs[0], type: 'int64' }] }
    expect(paths(card, int64 as ModelSignature)).toEqual([
      'card.preprocessing.tensors[0].columns[1]',
    ])
  })

  it('when the graph has an output the card leaves out, then nothing is reported', () => {
    const signature: ModelSignature = {
      ...signatures.iris,
      outputs: [...signatures.iris.outputs, { name: 'logits', type: 'float32', shape: ['N', 3] }],
    }
    expect(signatureMismatches(cards.iris, signature)).toEqual([])
  })
})
