import { createHash } from 'node:crypto'
import type { ModelCard } from '../../src/modules/models/card.js'
import { createAdam } from './adam.js'
import type { Artifacts, GoldenFile } from './artifacts.js'
import { tidy } from './linear.js'
import { encodeModel, type Node } from './onnx.js'
import { createRandom } from './random.js'
import { CHANNELS, type DrawnImage, drawShapes, SHAPES, SIDE } from './shapes-data.js'

/**
 * shapes: a small convolutional network that tells a circle, a square, a triangle and a cross
 * apart in a 32 x 32 colour picture, so that the image endpoints run end to end offline. Two
 * 3 x 3 convolutions (each followed by ReLU and 2 x 2 max pooling) and a dense layer, trained
 * by minibatch Adam with hand-written gradients on pictures drawn procedurally; no Python.
 */

const VERSION = '1.0.0'
const CREATED_AT = '2026-11-30T00:00:00Z'
const SEED = 20261201

const TRAIN_IMAGES = 4000
const TEST_IMAGES = 800
const C1 = 8
const C2 = 16
const C3 = 32
const EPOCHS = 6
const BATCH = 16
const LEARNING_RATE = 0.01
const GOLDEN_CASES = 8
const GOLDEN_TOLERANCE = 1e-4
const RESCALE = 1 / 255

const CLASSES = SHAPES.length
const S1 = SIDE
const S2 = SIDE / 2
const S3 = SIDE / 4
const AREA3 = S3 * S3

const HYPERPARAMETERS = {
  conv1_channels: C1,
  conv2_channels: C2,
  conv3_channels: C3,
  kernel: 3,
  epochs: EPOCHS,
  batch_size: BATCH,
  learning_rate: LEARNING_RATE,
  optimizer: 'adam',
}

interface Parameters {
  w1: Float64Array
  b1: Float64Array
  w2: Float64Array
  b2: Float64Array
  w3: Float64Array
  b3: Float64Array
  wd: Float64Array
  bd: Float64Array
}
const NAMES = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3', 'wd', 'bd'] as const

/** A 3 x 3 convolution with one pixel of zero padding: `cin` planes of `size`² -> `cout`. */
function conv(
  input: Float64Array,
  cin: number,
  size: number,
  weights: Float64Array,
  bias: Float64Array,
  cout: number,
): Float64Array {
  const area = size * size
  const out = new Float64Array(cout * area)
  for (let co = 0; co < cout; co++) {
    const o = out.subarray(co * area, (co + 1) * area)
    o.fill(bias[co] as number)
    for (let ci = 0; ci < cin; ci++) {
      const plane = input.subarray(ci * area, (ci + 1) * area)
      for (let ky = 0; ky < 3; ky++) {
        const dy = ky - 1
        const y0 = Math.max(0, -dy)
        const y1 = Math.min(size, size - dy)
        for (let kx = 0; kx < 3; kx++) {
          const dx = kx - 1
          const x0 = Math.max(0, -dx)
          const x1 = Math.min(size, size - dx)
          const w = weights[((co * cin + ci) * 3 + ky) * 3 + kx] as number
          for (let y = y0; y < y1; y++) {
            const row = y * size
            const from = (y + dy) * size + dx
            for (let x = x0; x < x1; x++)
              o[row + x] = (o[row + x] as number) + w * (plane[from + x] as number)
          }
        }
      }
    }
  }
  return out
}

/** Adds the gradients of `conv` to dW and dB, and to dIn when the input needs one. */
function convBackward(
  input: Float64Array,
  cin: number,
  size: number,
  weights: Float64Array,
  cout: number,
  dOut: Float64Array,
  dW: Float64Array,
  dB: Float64Array,
  dIn: Float64Array | null,
): void {
  const area = size * size
  for (let co = 0; co < cout; co++) {
    const d = dOut.subarray(co * area, (co + 1) * area)
    let sum = 0
    for (let i = 0; i < area; i++) sum += d[i] as number
    dB[co] = (dB[co] as number) + sum
    for (let ci = 0; ci < cin; ci++) {
      const plane = input.subarray(ci * area, (ci + 1) * area)
      const back = dIn?.subarray(ci * area, (ci + 1) * area)
      for (let ky = 0; ky < 3; ky++) {
        const dy = ky - 1
        const y0 = Math.max(0, -dy)
        const y1 = Math.min(size, size - dy)
        for (let kx = 0; kx < 3; kx++) {
          const dx = kx - 1
          const x0 = Math.max(0, -dx)
          const x1 = Math.min(size, size - dx)
          const at = ((co * cin + ci) * 3 + ky) * 3 + kx
          const w = weights[at] as number
          let acc = 0
          for (let y = y0; y < y1; y++) {
            const row = y * size
            const from = (y + dy) * size + dx
            for (let x = x0; x < x1; x++) {
              const g = d[row + x] as number
              acc += g * (plane[from + x] as number)
              if (back) back[from + x] = (back[from + x] as number) + w * g
            }
          }
          dW[at] = (dW[at] as number) + acc
        }
      }
    }
  }
}

/** ReLU, then 2 x 2 max pooling; `from` remembers which input each output came from. */
function reluPool(input: Float64Array, channels: number, size: number) {
  const half = size / 2
  const out = new Float64Array(channels * half * half)
  const from = new Int32Array(out.length)
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < half; y++) {
      for (let x = 0; x < half; x++) {
        let best = c * size * size + 2 * y * size + 2 * x
        for (const offset of [1, size, size + 1]) {
          const candidate = c * size * size + 2 * y * size + 2 * x + offset
          if ((input[candidate] as number) > (input[best] as number)) best = candidate
        }
        const at = (c * half + y) * half + x
        out[at] = Math.max(0, input[best] as number)
        from[at] = best
      }
    }
  }
  return { out, from }
}

/** Routes the pooled gradient back to the inputs that won, where ReLU let it through. */
function reluPoolBackward(
  dOut: Float64Array,
  pooled: Float64Array,
  from: Int32Array,
  inputSize: number,
) {
  const dIn = new Float64Array(inputSize)
  for (let i = 0; i < dOut.length; i++) {
    if ((pooled[i] as number) > 0) dIn[from[i] as number] = dOut[i] as number
  }
  return dIn
}

/**
 * The third convolution's ReLU averaged over the whole picture: each of its channels says
 * how strongly a pattern occurs anywhere, which is what makes the answer independent of
 * where the shape is.
 */
function forward(p: Parameters, image: Float64Array) {
  const a1 = conv(image, CHANNELS, S1, p.w1, p.b1, C1)
  const l1 = reluPool(a1, C1, S1)
  const a2 = conv(l1.out, C1, S2, p.w2, p.b2, C2)
  const l2 = reluPool(a2, C2, S2)
  const a3 = conv(l2.out, C2, S3, p.w3, p.b3, C3)
  const pooled = new Float64Array(C3)
  for (let c = 0; c < C3; c++) {
    let sum = 0
    for (let i = c * AREA3; i < (c + 1) * AREA3; i++) sum += Math.max(0, a3[i] as number)
    pooled[c] = sum / AREA3
  }
  const logits = Float64Array.from(p.bd)
  for (let c = 0; c < C3; c++) {
    const value = pooled[c] as number
    for (let k = 0; k < CLASSES; k++)
      logits[k] = (logits[k] as number) + value * (p.wd[c * CLASSES + k] as number)
  }
  return { l1, l2, a3, pooled, logits }
}

/** Adds one picture's share of the mean cross-entropy gradient over a batch of `batch`. */
function backward(
  p: Parameters,
  image: Float64Array,
  target: number,
  batch: number,
  grads: Parameters,
) {
  const { l1, l2, a3, pooled, logits } = forward(p, image)
  const dLogits = softmax(logits)
  dLogits[target] = (dLogits[target] as number) - 1
  for (let k = 0; k < CLASSES; k++) dLogits[k] = (dLogits[k] as number) / batch
  for (let k = 0; k < CLASSES; k++) grads.bd[k] = (grads.bd[k] as number) + (dLogits[k] as number)
  const dA3 = new Float64Array(C3 * AREA3)
  for (let c = 0; c < C3; c++) {
    let back = 0
    for (let k = 0; k < CLASSES; k++) {
      const at = c * CLASSES + k
      grads.wd[at] = (grads.wd[at] as number) + (pooled[c] as number) * (dLogits[k] as number)
      back += (p.wd[at] as number) * (dLogits[k] as number)
    }
    for (let i = c * AREA3; i < (c + 1) * AREA3; i++) {
      if ((a3[i] as number) > 0) dA3[i] = back / AREA3
    }
  }
  const dL2 = new Float64Array(C2 * AREA3)
  convBackward(l2.out, C2, S3, p.w3, C3, dA3, grads.w3, grads.b3, dL2)
  const dA2 = reluPoolBackward(dL2, l2.out, l2.from, C2 * S2 * S2)
  const dL1 = new Float64Array(C1 * S2 * S2)
  convBackward(l1.out, C1, S2, p.w2, C2, dA2, grads.w2, grads.b2, dL1)
  const dA1 = reluPoolBackward(dL1, l1.out, l1.from, C1 * S1 * S1)
  convBackward(image, CHANNELS, S1, p.w1, C1, dA1, grads.w1, grads.b1, null)
}

function softmax(logits: Float64Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY
  for (const value of logits) if (value > max) max = value
  const out = logits.map((value) => Math.exp(value - max))
  const sum = out.reduce((a, b) => a + b, 0)
  return out.map((value) => value / sum)
}

/** Per-channel mean and standard deviation of the rescaled pixels, as the card records them. */
function channelStats(images: readonly DrawnImage[]) {
  const sum = new Float64Array(CHANNELS)
  const squares = new Float64Array(CHANNELS)
  for (const { pixels } of images) {
    for (let i = 0; i < pixels.length; i++) {
      const value = (pixels[i] as number) * RESCALE
      sum[i % CHANNELS] = (sum[i % CHANNELS] as number) + value
      squares[i % CHANNELS] = (squares[i % CHANNELS] as number) + value * value
    }
  }
  const count = images.length * SIDE * SIDE
  const mean = Array.from(sum, (total) => tidy(total / count))
  const std = Array.from(squares, (total, c) =>
    tidy(Math.sqrt(total / count - ((sum[c] as number) / count) ** 2)),
  )
  return { mean, std }
}

/** An image as the server feeds it: NCHW planes of `(pixel * rescale - mean) / std`, in float32. */
function normalise(pixels: Uint8Array, mean: readonly number[], std: readonly number[]) {
  const out = new Float64Array(CHANNELS * SIDE * SIDE)
  for (let i = 0; i < SIDE * SIDE; i++) {
    for (let c = 0; c < CHANNELS; c++) {
      const value =
        ((pixels[i * CHANNELS + c] as number) * RESCALE - (mean[c] as number)) / (std[c] as number)
      out[c * SIDE * SIDE + i] = Math.fround(value)
    }
  }
  return out
}

const heNormal = (random: ReturnType<typeof createRandom>, size: number, fanIn: number) =>
  Float64Array.from({ length: size }, () => random.normal() * Math.sqrt(2 / fanIn))

export function trainShapes(): Artifacts {
  const random = createRandom(SEED)
  const train = drawShapes(random, TRAIN_IMAGES)
  const test = drawShapes(random, TEST_IMAGES)
  const { mean, std } = channelStats(train)
  const trainInputs = train.map((image) => normalise(image.pixels, mean, std))

  const p: Parameters = {
    w1: heNormal(random, C1 * CHANNELS * 9, CHANNELS * 9),
    b1: new Float64Array(C1),
    w2: heNormal(random, C2 * C1 * 9, C1 * 9),
    b2: new Float64Array(C2),
    w3: heNormal(random, C3 * C2 * 9, C2 * 9),
    b3: new Float64Array(C3),
    wd: heNormal(random, C3 * CLASSES, C3 / 2),
    bd: new Float64Array(CLASSES),
  }
  const grads = Object.fromEntries(
    NAMES.map((name) => [name, new Float64Array(p[name].length)]),
  ) as unknown as Parameters
  const optimisers = Object.fromEntries(NAMES.map((name) => [name, createAdam(p[name].length)]))

  const totalSteps = EPOCHS * Math.ceil(TRAIN_IMAGES / BATCH)
  let step = 0
  const indexes = Array.from({ length: TRAIN_IMAGES }, (_, i) => i)
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const order = random.shuffle(indexes)
    for (let start = 0; start < order.length; start += BATCH) {
      const rows = Math.min(BATCH, order.length - start)
      for (const name of NAMES) grads[name].fill(0)
      for (let r = 0; r < rows; r++) {
        const index = order[start + r] as number
        const image = trainInputs[index] as Float64Array
        backward(p, image, (train[index] as DrawnImage).shape, rows, grads)
      }
      step++
      // Linear decay to a tenth of the rate: large steps early, fine ones at the end.
      const rate = LEARNING_RATE * (1 - (0.9 * step) / totalSteps)
      for (const name of NAMES) optimisers[name]?.(p[name], grads[name], step, rate)
    }
  }

  // Metrics and golden outputs from exactly the float32 parameters the graph holds.
  const shipped = Object.fromEntries(
    NAMES.map((name) => [name, Float64Array.from(p[name], Math.fround)]),
  ) as unknown as Parameters
  let correct = 0
  let loss = 0
  const testProbabilities = test.map((image) => {
    const probabilities = softmax(forward(shipped, normalise(image.pixels, mean, std)).logits)
    const best = probabilities.indexOf(Math.max(...probabilities))
    if (best === image.shape) correct++
    loss -= Math.log(Math.max(probabilities[image.shape] as number, 1e-12))
    return probabilities
  })
  const accuracy = correct / TEST_IMAGES

  const labels = [...SHAPES]
  const card: ModelCard = {
    name: 'shapes',
    version: VERSION,
    task: 'classification',
    description: `Which shape a ${SIDE} x ${SIDE} colour picture shows: ${labels.join(', ')}. A small convolutional network (two 3 x 3 convolutions with ReLU and max pooling, one dense layer) trained on procedurally drawn pictures of one shape each, at a random size, place, rotation and colour, on a shaded, noisy background; it tells them apart in ${Math.round(accuracy * 1000) / 10}% of held-out pictures and knows no other kind of picture.`,
    inputs: [],
    preprocessing: { tensors: [], steps: [] },
    outputs: [
      {
        name: 'probabilities',
        dtype: 'float32',
        shape: ['N', CLASSES],
        description: 'Probability of each shape, in the order of labels.',
        labels,
      },
      {
        name: 'label',
        dtype: 'int64',
        shape: ['N'],
        description: 'Index of the most probable shape in labels.',
        labels,
      },
    ],
    image: {
      input: 'image',
      width: SIDE,
      height: SIDE,
      channels: CHANNELS,
      color_order: 'RGB',
      resize: 'fill',
      layout: 'NCHW',
      rescale: RESCALE,
      mean,
      std,
      scores: 'probabilities',
    },
    training: {
      algorithm:
        'convolutional network (conv 3x3, ReLU, max pool, conv 3x3, ReLU, max pool, dense, softmax), minibatch Adam',
      hyperparameters: HYPERPARAMETERS,
      seed: SEED,
      train_rows: TRAIN_IMAGES,
      test_rows: TEST_IMAGES,
    },
    metrics: { accuracy: tidy(accuracy), log_loss: tidy(loss / TEST_IMAGES) },
    training_data_sha256: datasetHash([...train, ...test]),
    created_at: CREATED_AT,
  }

  const values = (array: Float64Array) => Array.from(array)
  const onnx = encodeModel(
    {
      name: 'shapes',
      doc: card.description,
      inputs: [{ name: 'image', type: 'float', shape: ['N', CHANNELS, SIDE, SIDE] }],
      outputs: [
        { name: 'probabilities', type: 'float', shape: ['N', CLASSES] },
        { name: 'label', type: 'int64', shape: ['N'] },
      ],
      initializers: [
        { name: 'w1', type: 'float', dims: [C1, CHANNELS, 3, 3], values: values(shipped.w1) },
        { name: 'b1', type: 'float', dims: [C1], values: values(shipped.b1) },
        { name: 'w2', type: 'float', dims: [C2, C1, 3, 3], values: values(shipped.w2) },
        { name: 'b2', type: 'float', dims: [C2], values: values(shipped.b2) },
        { name: 'w3', type: 'float', dims: [C3, C2, 3, 3], values: values(shipped.w3) },
        { name: 'b3', type: 'float', dims: [C3], values: values(shipped.b3) },
        { name: 'wd', type: 'float', dims: [C3, CLASSES], values: values(shipped.wd) },
        { name: 'bd', type: 'float', dims: [CLASSES], values: values(shipped.bd) },
      ],
      nodes: [
        ...convBlock('image', 'w1', 'b1', 'pooled1'),
        ...convBlock('pooled1', 'w2', 'b2', 'pooled2'),
        {
          op: 'Conv',
          inputs: ['pooled2', 'w3', 'b3'],
          outputs: ['conv3'],
          attributes: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] },
        },
        { op: 'Relu', inputs: ['conv3'], outputs: ['relu3'] },
        { op: 'GlobalAveragePool', inputs: ['relu3'], outputs: ['pooled3'] },
        {
          op: 'Flatten',
          inputs: ['pooled3'],
          outputs: ['features'],
          attributes: { axis: { int: 1 } },
        },
        { op: 'MatMul', inputs: ['features', 'wd'], outputs: ['dense_product'] },
        { op: 'Add', inputs: ['dense_product', 'bd'], outputs: ['logits'] },
        {
          op: 'Softmax',
          inputs: ['logits'],
          outputs: ['probabilities'],
          attributes: { axis: { int: 1 } },
        },
        {
          op: 'ArgMax',
          inputs: ['probabilities'],
          outputs: ['label'],
          attributes: { axis: { int: 1 }, keepdims: { int: 0 } },
        },
      ],
    },
    {
      producer: 'orderflow-train',
      version: 1,
      doc: card.description,
      metadata: { name: 'shapes', version: VERSION },
    },
  )

  // Two held-out pictures of each shape, as raw RGB bytes: a test encodes them as it likes.
  const golden: GoldenFile = {
    model: 'shapes',
    version: VERSION,
    tolerance: GOLDEN_TOLERANCE,
    cases: Array.from({ length: GOLDEN_CASES }, (_, i) => {
      const image = test[i] as DrawnImage
      const probabilities = testProbabilities[i] as Float64Array
      return {
        input: {
          width: SIDE,
          height: SIDE,
          channels: CHANNELS,
          rgb_base64: Buffer.from(image.pixels).toString('base64'),
        },
        output: {
          probabilities: Array.from(probabilities, (value) => Number(value.toPrecision(7))),
          label: probabilities.indexOf(Math.max(...probabilities)),
        },
      }
    }),
  }
  return { name: 'shapes', onnx, card, golden }
}

/** Conv 3x3 (padding 1) -> ReLU -> MaxPool 2x2, as the training forward pass does it. */
function convBlock(input: string, weights: string, bias: string, output: string): Node[] {
  return [
    {
      op: 'Conv',
      inputs: [input, weights, bias],
      outputs: [`${output}_conv`],
      attributes: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] },
    },
    { op: 'Relu', inputs: [`${output}_conv`], outputs: [`${output}_relu`] },
    {
      op: 'MaxPool',
      inputs: [`${output}_relu`],
      outputs: [output],
      attributes: { kernel_shape: [2, 2], strides: [2, 2] },
    },
  ]
}

/** SHA-256 of every picture's class index byte followed by its RGB bytes, in drawing order. */
function datasetHash(images: readonly DrawnImage[]): string {
  const hash = createHash('sha256')
  for (const image of images) hash.update(Uint8Array.of(image.shape)).update(image.pixels)
  return hash.digest('hex')
}
