import type { ModelCard, ModelInput } from '../../src/modules/models/card.js'
import { type Artifacts, datasetSha256, GOLDEN_TOLERANCE, type GoldenFile } from './artifacts.js'
import {
  CATEGORICAL,
  type CarRow,
  type CategoricalName,
  generateCarPrices,
  NUMERIC,
  type NumericName,
  REQUIRED,
} from './car-price-data.js'
import {
  columnMeans,
  columnScales,
  f32,
  fitRidgeRegression,
  linearOutputs,
  tidy,
} from './linear.js'
import { encodeModel, type Initializer, type Node } from './onnx.js'
import { createRandom } from './random.js'
import { referenceDistribution } from './reference.js'

/** Bump VERSION and CREATED_AT together whenever the model changes. */
const VERSION = '1.0.0'
const CREATED_AT = '2026-11-25T00:00:00Z'
const DATA_SEED = 1604
const SPLIT_SEED = 20261125
const ROWS = 2000
const TEST_FRACTION = 0.2
const HYPERPARAMETERS = { lambda: 1, target: 'log(price_eur)' }
const GOLDEN_COMPLETE = 4
const GOLDEN_INCOMPLETE = 4

const NUMERIC_NAMES = Object.keys(NUMERIC) as NumericName[]
const CATEGORICAL_NAMES = Object.keys(CATEGORICAL) as CategoricalName[]

const DESCRIPTIONS: Record<NumericName | CategoricalName, string> = {
  year: 'year of first registration',
  mileage_km: 'odometer reading',
  engine_cc: 'engine displacement (none for electric cars)',
  power_kw: 'maximum engine power',
  torque_nm: 'maximum torque',
  weight_kg: 'kerb weight',
  seats: 'number of seats',
  doors: 'number of doors',
  brand: 'manufacturer',
  fuel_type: 'fuel or energy source',
  transmission: 'gearbox',
  body_type: 'body style',
  drivetrain: 'driven wheels',
  seller_type: 'who sells the car',
  owners: 'how many owners the car has had',
  color: 'exterior colour',
}

/** The lower median: always a value from the data, so integer inputs impute integers. */
function lowerMedian(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? 0
}

/** The most frequent category; a tie goes to the one listed first. */
function mostFrequent(values: string[], categories: readonly string[]): string {
  const counts = categories.map((category) => values.filter((value) => value === category).length)
  return categories[counts.indexOf(Math.max(...counts))] ?? ''
}

/**
 * Car price: imputation, standardisation and one-hot encoding inside the graph, then ridge
 * regression on the log price, which the graph turns back into euros with Exp.
 */
export function trainCarPrice(): Artifacts {
  const data = generateCarPrices(ROWS, DATA_SEED)
  const order = createRandom(SPLIT_SEED).shuffle(data.map((_, i) => i))
  const testCount = Math.round(ROWS * TEST_FRACTION)
  const train = order.slice(testCount).map((i) => data[i] as CarRow)
  const test = order.slice(0, testCount).map((i) => data[i] as CarRow)

  const medians = NUMERIC_NAMES.map((name) =>
    lowerMedian(train.flatMap((row) => row.numeric[name] ?? [])),
  )
  const modes = CATEGORICAL_NAMES.map((name) =>
    mostFrequent(
      train.flatMap((row) => row.categorical[name] ?? []),
      CATEGORICAL[name],
    ),
  )
  const imputeNumeric = (row: CarRow) =>
    NUMERIC_NAMES.map((name, j) => row.numeric[name] ?? (medians[j] as number))
  const trainNumeric = train.map(imputeNumeric)
  const mean = columnMeans(trainNumeric).map(tidy)
  const scale = columnScales(trainNumeric, mean).map(tidy)

  const encode = (row: CarRow) => [
    ...imputeNumeric(row).map((value, j) => (value - f32(mean[j] ?? 0)) / f32(scale[j] ?? 1)),
    ...CATEGORICAL_NAMES.flatMap((name, j) => {
      const value = row.categorical[name] ?? modes[j]
      return CATEGORICAL[name].map((category) => (category === value ? 1 : 0))
    }),
  ]

  const fitted = fitRidgeRegression(
    train.map(encode),
    train.map((row) => Math.log(row.price)),
    HYPERPARAMETERS.lambda,
  )
  const model = { weights: fitted.weights.map((row) => row.map(f32)), bias: fitted.bias.map(f32) }
  const predict = (row: CarRow) => Math.exp(linearOutputs(model, encode(row))[0] ?? 0)

  const errors = test.map((row) => predict(row) - row.price)
  const logErrors = test.map((row) => Math.log(predict(row)) - Math.log(row.price))
  const rSquared = (residuals: number[], actual: number[]) => {
    const mean = actual.reduce((sum, value) => sum + value, 0) / actual.length
    const total = actual.reduce((sum, value) => sum + (value - mean) ** 2, 0)
    return 1 - residuals.reduce((sum, value) => sum + value * value, 0) / total
  }
  const rootMeanSquare = (values: number[]) =>
    Math.sqrt(values.reduce((sum, value) => sum + value * value, 0) / values.length)
  const metrics = {
    rmse: tidy(rootMeanSquare(errors)),
    mae: tidy(errors.reduce((sum, error) => sum + Math.abs(error), 0) / test.length),
    r2: tidy(
      rSquared(
        errors,
        test.map((row) => row.price),
      ),
    ),
    rmse_log: tidy(rootMeanSquare(logErrors)),
    r2_log: tidy(
      rSquared(
        logErrors,
        test.map((row) => Math.log(row.price)),
      ),
    ),
    mape: tidy(
      test.reduce((sum, row, i) => sum + Math.abs(errors[i] ?? 0) / row.price, 0) / test.length,
    ),
  }

  const inputs: ModelInput[] = [
    ...NUMERIC_NAMES.map((name, j): ModelInput => {
      const { type, unit, minimum, maximum } = NUMERIC[name]
      const required = REQUIRED.has(name)
      return {
        name,
        type,
        description: DESCRIPTIONS[name],
        unit,
        minimum,
        maximum,
        required,
        ...(required ? {} : { default: medians[j] as number }),
      }
    }),
    ...CATEGORICAL_NAMES.map((name, j): ModelInput => {
      const required = REQUIRED.has(name)
      return {
        name,
        type: 'category',
        description: DESCRIPTIONS[name],
        categories: [...CATEGORICAL[name]],
        required,
        ...(required ? {} : { default: modes[j] as string }),
      }
    }),
  ]

  const card: ModelCard = {
    name: 'car-price',
    version: VERSION,
    task: 'regression',
    description:
      'Asking price of a used car from 16 listing features: ridge regression on the log price, with imputation, standardisation and one-hot encoding in the graph.',
    inputs,
    preprocessing: {
      tensors: [
        {
          name: 'numeric',
          dtype: 'float32',
          shape: ['N', 8],
          columns: NUMERIC_NAMES,
          missing: 'NaN',
        },
        {
          name: 'categorical',
          dtype: 'string',
          shape: ['N', 8],
          columns: CATEGORICAL_NAMES,
          missing: '',
        },
      ],
      steps: [
        {
          step: 'impute',
          in_graph: true,
          columns: NUMERIC_NAMES,
          strategy: 'median',
          values: medians,
        },
        {
          step: 'impute',
          in_graph: true,
          columns: CATEGORICAL_NAMES,
          strategy: 'most_frequent',
          values: modes,
        },
        { step: 'standardize', in_graph: true, columns: NUMERIC_NAMES, mean, scale },
        {
          step: 'one_hot',
          in_graph: true,
          columns: CATEGORICAL_NAMES,
          categories: CATEGORICAL_NAMES.map((name) => [...CATEGORICAL[name]]),
        },
      ],
    },
    outputs: [
      {
        name: 'price',
        dtype: 'float32',
        shape: ['N', 1],
        description: 'Predicted asking price: exp of the predicted log price.',
        unit: 'EUR',
      },
    ],
    training: {
      algorithm: 'ridge regression (closed form) on log(price)',
      hyperparameters: HYPERPARAMETERS,
      seed: SPLIT_SEED,
      train_rows: train.length,
      test_rows: test.length,
    },
    metrics,
    training_data_sha256: datasetSha256(
      [...NUMERIC_NAMES, ...CATEGORICAL_NAMES, 'price_eur'],
      data.map((row) => [
        ...NUMERIC_NAMES.map((name) => row.numeric[name]),
        ...CATEGORICAL_NAMES.map((name) => row.categorical[name]),
        row.price,
      ]),
    ),
    created_at: CREATED_AT,
    reference: referenceDistribution(
      inputs,
      train.map((row) =>
        Object.fromEntries(
          [...Object.entries(row.numeric), ...Object.entries(row.categorical)].map(
            ([name, value]) => [name, value ?? undefined],
          ),
        ),
      ),
    ),
  }

  const width =
    NUMERIC_NAMES.length +
    CATEGORICAL_NAMES.reduce((sum, name) => sum + CATEGORICAL[name].length, 0)
  const initializers: Initializer[] = [
    { name: 'medians', type: 'float', dims: [8], values: medians },
    { name: 'mean', type: 'float', dims: [8], values: mean },
    { name: 'scale', type: 'float', dims: [8], values: scale },
    { name: 'one_hot_values', type: 'float', dims: [2], values: [0, 1] },
    { name: 'weights', type: 'float', dims: [width, 1], values: model.weights.flat() },
    { name: 'bias', type: 'float', dims: [1], values: model.bias },
  ]
  const nodes: Node[] = [
    { op: 'IsNaN', inputs: ['numeric'], outputs: ['numeric_missing'] },
    {
      op: 'Where',
      inputs: ['numeric_missing', 'medians', 'numeric'],
      outputs: ['numeric_imputed'],
    },
    { op: 'Sub', inputs: ['numeric_imputed', 'mean'], outputs: ['numeric_centered'] },
    { op: 'Div', inputs: ['numeric_centered', 'scale'], outputs: ['numeric_scaled'] },
  ]
  CATEGORICAL_NAMES.forEach((name, j) => {
    const categories = CATEGORICAL[name]
    initializers.push(
      { name: `${name}_column`, type: 'int64', dims: [], values: [j] },
      { name: `${name}_depth`, type: 'int64', dims: [], values: [categories.length] },
    )
    nodes.push(
      {
        op: 'Gather',
        inputs: ['categorical', `${name}_column`],
        outputs: [name],
        attributes: { axis: { int: 1 } },
      },
      {
        // Missing ("") and unknown strings both fall to the default, the most frequent category.
        op: 'LabelEncoder',
        domain: 'ai.onnx.ml',
        inputs: [name],
        outputs: [`${name}_code`],
        attributes: {
          keys_strings: [...categories],
          values_int64s: categories.map((_, k) => k),
          default_int64: { int: (categories as readonly string[]).indexOf(modes[j] ?? '') },
        },
      },
      {
        op: 'OneHot',
        inputs: [`${name}_code`, `${name}_depth`, 'one_hot_values'],
        outputs: [`${name}_one_hot`],
        attributes: { axis: { int: -1 } },
      },
    )
  })
  nodes.push(
    {
      op: 'Concat',
      inputs: ['numeric_scaled', ...CATEGORICAL_NAMES.map((name) => `${name}_one_hot`)],
      outputs: ['features'],
      attributes: { axis: { int: 1 } },
    },
    { op: 'MatMul', inputs: ['features', 'weights'], outputs: ['product'] },
    { op: 'Add', inputs: ['product', 'bias'], outputs: ['log_price'] },
    { op: 'Exp', inputs: ['log_price'], outputs: ['price'] },
  )
  const onnx = encodeModel(
    {
      name: 'car_price',
      doc: card.description,
      inputs: [
        { name: 'numeric', type: 'float', shape: ['N', 8], doc: NUMERIC_NAMES.join(',') },
        { name: 'categorical', type: 'string', shape: ['N', 8], doc: CATEGORICAL_NAMES.join(',') },
      ],
      outputs: [{ name: 'price', type: 'float', shape: ['N', 1] }],
      initializers,
      nodes,
    },
    {
      producer: 'orderflow-train',
      version: 1,
      doc: card.description,
      metadata: { name: 'car-price', version: VERSION },
    },
  )

  const isComplete = (row: CarRow) =>
    Object.values(row.numeric).every((value) => value !== null) &&
    Object.values(row.categorical).every((value) => value !== null)
  const goldenRows = [
    ...test.filter(isComplete).slice(0, GOLDEN_COMPLETE),
    ...test.filter((row) => !isComplete(row)).slice(0, GOLDEN_INCOMPLETE),
  ]
  const golden: GoldenFile = {
    model: 'car-price',
    version: VERSION,
    tolerance: GOLDEN_TOLERANCE,
    cases: goldenRows.map((row) => ({
      input: Object.fromEntries(
        [
          ...Object.entries<number | string | null>(row.numeric),
          ...Object.entries<number | string | null>(row.categorical),
        ].filter((entry): entry is [string, number | string] => entry[1] !== null),
      ),
      output: { price: [predict(row)] },
    })),
  }
  return { name: 'car-price', onnx, card, golden }
}
