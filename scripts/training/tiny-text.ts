import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { ModelCard } from '../../src/modules/models/card.js'
import { createAdam } from './adam.js'
import type { Artifacts } from './artifacts.js'
import { encodeModel } from './onnx.js'
import { createRandom } from './random.js'

/**
 * tiny-text: a character-level language model small enough to train here in well under a
 * minute and to run in-process, so that text generation and streaming work offline from the
 * first start. It reads the last CONTEXT characters, embeds each, and a tanh layer predicts
 * the next character (Bengio et al.'s neural probabilistic language model, over characters).
 * Trained by minibatch Adam with hand-written gradients; no Python, no network.
 */

const VERSION = '1.0.0'
const CREATED_AT = '2026-11-30T00:00:00Z'
const SEED = 20261130
export const CORPUS_FILE = new URL('./data/tiny-text.txt', import.meta.url)

const CONTEXT = 12
const EMBEDDING = 12
const HIDDEN = 128
const EPOCHS = 3
const BATCH = 32
const LEARNING_RATE = 0.005
const HOLDOUT = 0.1
const PAD = '\n'
const GOLDEN_CASES = 4
const GOLDEN_TOLERANCE = 1e-4

const HYPERPARAMETERS = {
  context: CONTEXT,
  embedding: EMBEDDING,
  hidden: HIDDEN,
  epochs: EPOCHS,
  batch_size: BATCH,
  learning_rate: LEARNING_RATE,
  optimizer: 'adam',
}

interface Parameters {
  embedding: Float64Array
  w1: Float64Array
  b1: Float64Array
  w2: Float64Array
  b2: Float64Array
}

const WIDTH = CONTEXT * EMBEDDING

/** Logits of the next character after each context (`contexts` holds CONTEXT indexes per row). */
function forward(p: Parameters, contexts: Int32Array, rows: number, vocab: number) {
  const hidden = new Float64Array(rows * HIDDEN)
  const logits = new Float64Array(rows * vocab)
  for (let r = 0; r < rows; r++) {
    const h = hidden.subarray(r * HIDDEN, (r + 1) * HIDDEN)
    h.set(p.b1)
    for (let k = 0; k < CONTEXT; k++) {
      const token = contexts[r * CONTEXT + k] as number
      for (let e = 0; e < EMBEDDING; e++) {
        const x = p.embedding[token * EMBEDDING + e] as number
        const row = (k * EMBEDDING + e) * HIDDEN
        for (let j = 0; j < HIDDEN; j++) h[j] = (h[j] as number) + x * (p.w1[row + j] as number)
      }
    }
    for (let j = 0; j < HIDDEN; j++) h[j] = Math.tanh(h[j] as number)
    const out = logits.subarray(r * vocab, (r + 1) * vocab)
    out.set(p.b2)
    for (let j = 0; j < HIDDEN; j++) {
      const hj = h[j] as number
      const row = j * vocab
      for (let v = 0; v < vocab; v++) out[v] = (out[v] as number) + hj * (p.w2[row + v] as number)
    }
  }
  return { hidden, logits }
}

/** Softmax of each row, in place; answers the mean negative log-likelihood of `targets`. */
function softmaxLoss(logits: Float64Array, targets: Int32Array, rows: number, vocab: number) {
  let loss = 0
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab)
    let max = Number.NEGATIVE_INFINITY
    for (const value of row) if (value > max) max = value
    let sum = 0
    for (let v = 0; v < vocab; v++) {
      row[v] = Math.exp((row[v] as number) - max)
      sum += row[v] as number
    }
    for (let v = 0; v < vocab; v++) row[v] = (row[v] as number) / sum
    loss -= Math.log(Math.max(row[targets[r] as number] as number, 1e-12))
  }
  return loss / rows
}

/** The float32 values the graph will hold, so metrics describe the shipped file. */
function toFloat32(p: Parameters): Parameters {
  const round = (values: Float64Array) => Float64Array.from(values, Math.fround)
  return {
    embedding: round(p.embedding),
    w1: round(p.w1),
    b1: round(p.b1),
    w2: round(p.w2),
    b2: round(p.b2),
  }
}

const tidy = (value: number) => Number(value.toPrecision(4))

export function trainTinyText(corpus = readFileSync(CORPUS_FILE, 'utf8')): Artifacts {
  const random = createRandom(SEED)
  const vocabulary = [...new Set(corpus)].sort()
  const vocab = vocabulary.length
  const indexOf = new Map(vocabulary.map((char, index) => [char, index]))
  const pad = indexOf.get(PAD) as number
  const text = Int32Array.from(corpus, (char) => indexOf.get(char) as number)

  // Row i predicts text[i] from the CONTEXT characters before it, padded at the start.
  const contextAt = (i: number, into: Int32Array, at: number) => {
    for (let k = 0; k < CONTEXT; k++) {
      const source = i - CONTEXT + k
      into[at * CONTEXT + k] = source < 0 ? pad : (text[source] as number)
    }
  }
  const split = Math.floor(text.length * (1 - HOLDOUT))
  const trainRows = Array.from({ length: split }, (_, i) => i)

  const init = (size: number, scale: number) =>
    Float64Array.from({ length: size }, () => random.normal() * scale)
  const p: Parameters = {
    embedding: init(vocab * EMBEDDING, 1),
    w1: init(WIDTH * HIDDEN, 1 / Math.sqrt(WIDTH)),
    b1: new Float64Array(HIDDEN),
    w2: init(HIDDEN * vocab, 1 / Math.sqrt(HIDDEN)),
    b2: new Float64Array(vocab),
  }
  const names = ['embedding', 'w1', 'b1', 'w2', 'b2'] as const
  const optimisers = Object.fromEntries(names.map((name) => [name, createAdam(p[name].length)]))
  const grads: Parameters = {
    embedding: new Float64Array(p.embedding.length),
    w1: new Float64Array(p.w1.length),
    b1: new Float64Array(p.b1.length),
    w2: new Float64Array(p.w2.length),
    b2: new Float64Array(p.b2.length),
  }

  const contexts = new Int32Array(BATCH * CONTEXT)
  const targets = new Int32Array(BATCH)
  const dHidden = new Float64Array(HIDDEN)
  const totalSteps = EPOCHS * Math.ceil(split / BATCH)
  let step = 0
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const order = random.shuffle(trainRows)
    for (let start = 0; start < order.length; start += BATCH) {
      const rows = Math.min(BATCH, order.length - start)
      for (let r = 0; r < rows; r++) {
        const i = order[start + r] as number
        contextAt(i, contexts, r)
        targets[r] = text[i] as number
      }
      const { hidden, logits } = forward(p, contexts, rows, vocab)
      softmaxLoss(logits, targets, rows, vocab)
      for (const name of names) grads[name].fill(0)
      for (let r = 0; r < rows; r++) {
        const probs = logits.subarray(r * vocab, (r + 1) * vocab)
        probs[targets[r] as number] = (probs[targets[r] as number] as number) - 1
        const h = hidden.subarray(r * HIDDEN, (r + 1) * HIDDEN)
        for (let v = 0; v < vocab; v++)
          grads.b2[v] = (grads.b2[v] as number) + (probs[v] as number) / rows
        for (let j = 0; j < HIDDEN; j++) {
          const hj = h[j] as number
          const row = j * vocab
          let back = 0
          for (let v = 0; v < vocab; v++) {
            const d = (probs[v] as number) / rows
            grads.w2[row + v] = (grads.w2[row + v] as number) + hj * d
            back += d * (p.w2[row + v] as number)
          }
          dHidden[j] = back * (1 - hj * hj)
          grads.b1[j] = (grads.b1[j] as number) + (dHidden[j] as number)
        }
        for (let k = 0; k < CONTEXT; k++) {
          const token = contexts[r * CONTEXT + k] as number
          for (let e = 0; e < EMBEDDING; e++) {
            const x = p.embedding[token * EMBEDDING + e] as number
            const row = (k * EMBEDDING + e) * HIDDEN
            let back = 0
            for (let j = 0; j < HIDDEN; j++) {
              const d = dHidden[j] as number
              grads.w1[row + j] = (grads.w1[row + j] as number) + x * d
              back += d * (p.w1[row + j] as number)
            }
            const at = token * EMBEDDING + e
            grads.embedding[at] = (grads.embedding[at] as number) + back
          }
        }
      }
      step++
      // Linear decay to a tenth of the rate: large steps early, fine ones at the end.
      const rate = LEARNING_RATE * (1 - (0.9 * step) / totalSteps)
      for (const name of names) optimisers[name]?.(p[name], grads[name], step, rate)
    }
  }

  const shipped = toFloat32(p)
  const testCount = text.length - split
  const testContexts = new Int32Array(testCount * CONTEXT)
  const testTargets = new Int32Array(testCount)
  for (let r = 0; r < testCount; r++) {
    contextAt(split + r, testContexts, r)
    testTargets[r] = text[split + r] as number
  }
  const { logits: testLogits } = forward(shipped, testContexts, testCount, vocab)
  const rawLogits = Float64Array.from(testLogits)
  const loss = softmaxLoss(testLogits, testTargets, testCount, vocab)
  let correct = 0
  for (let r = 0; r < testCount; r++) {
    const row = testLogits.subarray(r * vocab, (r + 1) * vocab)
    let best = 0
    for (let v = 1; v < vocab; v++) if ((row[v] as number) > (row[best] as number)) best = v
    if (best === testTargets[r]) correct++
  }
  const bitsPerChar = loss / Math.LN2
  const accuracy = correct / testCount

  const card: ModelCard = {
    name: 'tiny-text',
    version: VERSION,
    task: 'text-generation',
    description: `A character-level language model (embeddings of the last ${CONTEXT} characters, one tanh layer) trained on ${Math.round(corpus.length / 1000)} KB of short shop stories the project generates from a grammar; it writes plausible sentences of that corpus, guesses ${Math.round(accuracy * 100)}% of held-out next characters at ${tidy(bitsPerChar)} bits per character, and knows nothing else.`,
    inputs: [],
    preprocessing: { tensors: [], steps: [] },
    outputs: [],
    generation: {
      vocabulary,
      context_length: CONTEXT,
      input: 'context',
      output: 'logits',
      pad: PAD,
    },
    training: {
      algorithm:
        'character-level neural language model (embedding, tanh layer, softmax), minibatch Adam',
      hyperparameters: HYPERPARAMETERS,
      seed: SEED,
      train_rows: split,
      test_rows: testCount,
    },
    metrics: {
      accuracy: tidy(accuracy),
      bits_per_char: tidy(bitsPerChar),
      perplexity: tidy(Math.exp(loss)),
    },
    training_data_sha256: createHash('sha256').update(corpus).digest('hex'),
    created_at: CREATED_AT,
  }

  const values = (array: Float64Array) => Array.from(array)
  const onnx = encodeModel(
    {
      name: 'tiny-text',
      doc: card.description,
      inputs: [{ name: 'context', type: 'int64', shape: ['N', CONTEXT] }],
      outputs: [{ name: 'logits', type: 'float', shape: ['N', vocab] }],
      initializers: [
        {
          name: 'embedding',
          type: 'float',
          dims: [vocab, EMBEDDING],
          values: values(shipped.embedding),
        },
        { name: 'flat_shape', type: 'int64', dims: [2], values: [-1, WIDTH] },
        { name: 'w1', type: 'float', dims: [WIDTH, HIDDEN], values: values(shipped.w1) },
        { name: 'b1', type: 'float', dims: [HIDDEN], values: values(shipped.b1) },
        { name: 'w2', type: 'float', dims: [HIDDEN, vocab], values: values(shipped.w2) },
        { name: 'b2', type: 'float', dims: [vocab], values: values(shipped.b2) },
      ],
      nodes: [
        {
          op: 'Gather',
          inputs: ['embedding', 'context'],
          outputs: ['embedded'],
          attributes: { axis: { int: 0 } },
        },
        { op: 'Reshape', inputs: ['embedded', 'flat_shape'], outputs: ['flat'] },
        { op: 'MatMul', inputs: ['flat', 'w1'], outputs: ['hidden_product'] },
        { op: 'Add', inputs: ['hidden_product', 'b1'], outputs: ['hidden_pre'] },
        { op: 'Tanh', inputs: ['hidden_pre'], outputs: ['hidden'] },
        { op: 'MatMul', inputs: ['hidden', 'w2'], outputs: ['output_product'] },
        { op: 'Add', inputs: ['output_product', 'b2'], outputs: ['logits'] },
      ],
    },
    {
      producer: 'orderflow-train',
      version: 1,
      doc: card.description,
      metadata: { name: 'tiny-text', version: VERSION },
    },
  )

  const stride = Math.floor(testCount / GOLDEN_CASES)
  const golden = {
    model: 'tiny-text',
    version: VERSION,
    tolerance: GOLDEN_TOLERANCE,
    cases: Array.from({ length: GOLDEN_CASES }, (_, c) => {
      const r = c * stride
      const context = Array.from(
        testContexts.subarray(r * CONTEXT, (r + 1) * CONTEXT),
        (i) => vocabulary[i],
      ).join('')
      return {
        input: { context },
        output: {
          logits: Array.from(rawLogits.subarray(r * vocab, (r + 1) * vocab), (value) =>
            Number(value.toPrecision(7)),
          ),
        },
      }
    }),
  }
  return { name: 'tiny-text', onnx, card, golden }
}
