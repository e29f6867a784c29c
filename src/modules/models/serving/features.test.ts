import { Ajv } from 'ajv'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shippedBytes, shippedCard, shippedGolden } from '../../../../test/models.js'
import type { ModelCard, PreprocessingStep } from '../card.js'
import {
  type Feeds,
  InferenceError,
  type LoadedModel,
  type TensorData,
  tensor,
} from '../runtime/backend.js'
import { createOnnxBackend } from '../runtime/onnx-backend.js'
import {
  canonicalInputs,
  checkInputs,
  decodeRows,
  encodeRows,
  inputsJsonSchema,
} from './features.js'

const iris = shippedCard('iris')
const carPrice = shippedCard('car-price')
const irisGolden = shippedGolden('iris')
const carPriceGolden = shippedGolden('car-price')

const flower = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }
const car = {
  year: 2018,
  mileage_km: 90_000,
  brand: 'skoda',
  fuel_type: 'diesel',
  transmission: 'manual',
}

/** A hand-made card for the layouts the shipped models do not use. */
function tinyCard(overrides: Partial<ModelCard>): ModelCard {
  return {
    name: 'tiny',
    version: '1.0.0',
    task: 'classification',
    description: 'for tests',
    inputs: [
      { name: 'x', type: 'number', description: 'x', required: false, default: 3 },
      { name: 'n', type: 'integer', description: 'n', required: false, default: 7 },
    ],
    preprocessing: {
      tensors: [
        { name: 'xs', dtype: 'float32', shape: ['N', 1], columns: ['x'], missing: 'NaN' },
        { name: 'ns', dtype: 'int64', shape: ['N', 1], columns: ['n'], missing: 'NaN' },
      ],
      steps: [],
    },
    outputs: [
      {
        name: 'p',
        dtype: 'float32',
        shape: ['N', 2],
        description: 'p',
        labels: ['no', 'yes'],
      },
    ],
    training: { algorithm: 'none', hyperparameters: {}, seed: 1, train_rows: 1, test_rows: 1 },
    metrics: {},
    training_data_sha256: 'a'.repeat(64),
    created_at: '2026-11-25T00:00:00Z',
    ...overrides,
  }
}

describe('checkInputs', () => {
  it('accepts a complete iris flower and a car with only its required inputs', () => {
    expect(checkInputs(iris, flower, 'body.inputs')).toEqual([])
    expect(checkInputs(carPrice, car, 'body.inputs')).toEqual([])
  })

  it('accepts every golden input of both shipped models', () => {
    for (const [card, golden] of [
      [iris, irisGolden],
      [carPrice, carPriceGolden],
    ] as const) {
      golden.cases.forEach((goldenCase, i) => {
        expect(checkInputs(card, goldenCase.input, `body.instances[${i}]`)).toEqual([])
      })
    }
  })

  it.each([null, 'sepal', 5, [flower], undefined])(
    'when the inputs are %j, then answers one error at the path: must be an object',
    (inputs) => {
      expect(checkInputs(iris, inputs, 'body.instances[3]')).toEqual([
        { path: 'body.instances[3]', message: 'must be an object' },
      ])
    },
  )

  it('when a key is not an input of the model, then names it under the path', () => {
    expect(checkInputs(iris, { ...flower, colour: 'blue' }, 'body.inputs')).toEqual([
      { path: 'body.inputs.colour', message: 'is not an input of model iris' },
    ])
  })

  it('quotes an unknown key that is not a plain identifier, so it cannot pass for a nested path', () => {
    expect(
      checkInputs(iris, { ...flower, 'a.b': 1, 'a/b~c': 2, 'petal width': 3 }, 'body.inputs'),
    ).toEqual([
      { path: 'body.inputs["a.b"]', message: 'is not an input of model iris' },
      { path: 'body.inputs["a/b~c"]', message: 'is not an input of model iris' },
      { path: 'body.inputs["petal width"]', message: 'is not an input of model iris' },
    ])
  })

  it('reads own properties only, so an input named constructor is not found on the prototype', () => {
    const card = tinyCard({
      inputs: [{ name: 'constructor', type: 'number', description: 'c', required: true }],
    })
    expect(checkInputs(card, {}, 'body.inputs')).toEqual([
      { path: 'body.inputs.constructor', message: 'is required' },
    ])
    expect(checkInputs(card, { constructor: 2 }, 'body.inputs')).toEqual([])
  })

  it('when a required input is absent, then it is required', () => {
    const { sepal_length: _, ...rest } = flower
    expect(checkInputs(iris, rest, 'body.inputs')).toEqual([
      { path: 'body.inputs.sepal_length', message: 'is required' },
    ])
  })

  it('when a required input is null, then refuses it', () => {
    expect(checkInputs(carPrice, { ...car, brand: null }, 'body.inputs')).toEqual([
      { path: 'body.inputs.brand', message: 'is required and cannot be null' },
    ])
  })

  it('when an optional input is null, then takes it as missing', () => {
    const nulls = { engine_cc: null, power_kw: null, color: null, owners: null }
    expect(checkInputs(carPrice, { ...car, ...nulls }, 'body.inputs')).toEqual([])
  })

  it.each([
    ['a numeric string', '5.1'],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a boolean', true],
    ['an array', [5.1]],
  ])('when a number input is %s, then it must be a number', (_, value) => {
    expect(checkInputs(iris, { ...flower, petal_width: value }, 'body.inputs')).toEqual([
      { path: 'body.inputs.petal_width', message: 'must be a number' },
    ])
  })

  it('when an integer input has a fraction or is a string, then it must be an integer', () => {
    expect(checkInputs(carPrice, { ...car, year: 2018.5, seats: '5' }, 'body.inputs')).toEqual([
      { path: 'body.inputs.year', message: 'must be an integer' },
      { path: 'body.inputs.seats', message: 'must be an integer' },
    ])
  })

  it('accepts 2018.0 as an integer, since JSON cannot tell it from 2018', () => {
    expect(checkInputs(carPrice, { ...car, year: 2018.0 }, 'body.inputs')).toEqual([])
  })

  it('when a category is not a string, then it must be a string', () => {
    expect(checkInputs(carPrice, { ...car, brand: 3 }, 'body.inputs')).toEqual([
      { path: 'body.inputs.brand', message: 'must be a string' },
    ])
  })

  it('takes the bounds as inclusive and states the violated one with its unit', () => {
    expect(
      checkInputs(iris, { ...flower, sepal_length: 0, sepal_width: 10 }, 'body.inputs'),
    ).toEqual([])
    expect(
      checkInputs(iris, { ...flower, sepal_length: -0.1, sepal_width: 10.01 }, 'body.inputs'),
    ).toEqual([
      { path: 'body.inputs.sepal_length', message: 'must be at least 0 (cm)' },
      { path: 'body.inputs.sepal_width', message: 'must be at most 10 (cm)' },
    ])
    expect(checkInputs(carPrice, { ...car, mileage_km: 400_001 }, 'body.inputs')).toEqual([
      { path: 'body.inputs.mileage_km', message: 'must be at most 400000 (km)' },
    ])
  })

  it('when a category is unknown, then lists the allowed ones, case-sensitively', () => {
    expect(checkInputs(carPrice, { ...car, fuel_type: 'Diesel' }, 'body.inputs')).toEqual([
      {
        path: 'body.inputs.fuel_type',
        message: 'must be one of: petrol, diesel, hybrid, electric, lpg',
      },
    ])
  })

  it('lists every problem at once, each by its path', () => {
    const inputs = {
      year: 1999,
      mileage_km: '90000',
      engine_cc: 1500.5,
      brand: 'trabant',
      transmission: null,
      color: 'white',
      wheels: 4,
    }
    expect(checkInputs(carPrice, inputs, 'body.instances[2]')).toEqual([
      { path: 'body.instances[2].wheels', message: 'is not an input of model car-price' },
      { path: 'body.instances[2].year', message: 'must be at least 2000 (year)' },
      { path: 'body.instances[2].mileage_km', message: 'must be a number' },
      { path: 'body.instances[2].engine_cc', message: 'must be an integer' },
      {
        path: 'body.instances[2].brand',
        message: `must be one of: ${carPrice.inputs.find((i) => i.name === 'brand')?.categories?.join(', ')}`,
      },
      { path: 'body.instances[2].fuel_type', message: 'is required' },
      { path: 'body.instances[2].transmission', message: 'is required and cannot be null' },
    ])
  })
})

describe('encodeRows', () => {
  it('lays iris rows out as one float32 tensor of dims [rows, 4], in card column order', () => {
    const reordered = { petal_width: 0.2, petal_length: 1.4, sepal_width: 3.5, sepal_length: 5.1 }
    const feeds = encodeRows(iris, [flower, reordered, { ...flower, sepal_length: 7 }])
    expect(Object.keys(feeds)).toEqual(['float_input'])
    expect(feeds.float_input).toEqual(
      tensor(
        'float32',
        [3, 4],
        Float32Array.of(5.1, 3.5, 1.4, 0.2, 5.1, 3.5, 1.4, 0.2, 7, 3.5, 1.4, 0.2),
      ),
    )
  })

  it('sends a missing or null number as NaN and a missing or null category as empty text', () => {
    const feeds = encodeRows(carPrice, [{ ...car, engine_cc: null, doors: 3, color: null }])
    expect(feeds.numeric?.type).toBe('float32')
    expect(feeds.numeric?.dims).toEqual([1, 8])
    expect(Array.from(feeds.numeric?.data as Float32Array)).toEqual([
      2018,
      90_000,
      Number.NaN,
      Number.NaN,
      Number.NaN,
      Number.NaN,
      Number.NaN,
      3,
    ])
    expect(feeds.categorical).toEqual(
      tensor('string', [1, 8], ['skoda', 'diesel', 'manual', '', '', '', '', '']),
    )
  })

  it('encodes an int64 column as BigInt and a missing one as the card default', () => {
    const feeds = encodeRows(tinyCard({}), [{ x: 1.5, n: 4 }, {}])
    expect(feeds.xs).toEqual(tensor('float32', [2, 1], Float32Array.of(1.5, Number.NaN)))
    expect(feeds.ns).toEqual(tensor('int64', [2, 1], BigInt64Array.of(4n, 7n)))
  })

  it('when a missing int64 input has no default, then refuses to guess', () => {
    const card = tinyCard({})
    card.inputs = card.inputs.map(({ default: _, ...input }) => input)
    expect(() => encodeRows(card, [{ x: 1 }])).toThrow(InferenceError)
  })

  it('applies impute and standardize steps the graph leaves to the caller, in card order', () => {
    const card = tinyCard({})
    card.preprocessing.steps = [
      { step: 'impute', in_graph: false, strategy: 'median', columns: ['x'], values: [4] },
      { step: 'standardize', in_graph: false, columns: ['x'], mean: [2], scale: [0.5] },
      { step: 'standardize', in_graph: true, columns: ['x'], mean: [100], scale: [100] },
    ]
    const feeds = encodeRows(card, [{ x: 3 }, { x: null }])
    expect(feeds.xs).toEqual(tensor('float32', [2, 1], Float32Array.of(2, 4)))
  })

  it.each([
    ['a standardize step without a mean', { step: 'standardize', mean: [], scale: [1] }, 1],
    ['a standardize step without a scale', { step: 'standardize', mean: [0], scale: [] }, 1],
    ['an impute step without a value', { step: 'impute', strategy: 'median', values: [] }, null],
  ] as const)(
    'when a stored card has %s for a column, then refuses rather than guess',
    (_, step, x) => {
      const card = tinyCard({})
      card.preprocessing.steps = [
        { ...step, in_graph: false, columns: ['x'] } as unknown as PreprocessingStep,
      ]
      expect(() => encodeRows(card, [{ x }])).toThrow(/contradicts itself/)
    },
  )

  it('when a caller step names a column no tensor carries, then refuses rather than skip it', () => {
    const card = tinyCard({})
    card.preprocessing.steps = [
      { step: 'standardize', in_graph: false, columns: ['x', 'y'], mean: [0, 0], scale: [1, 2] },
    ]
    expect(() => encodeRows(card, [{ x: 1 }])).toThrow(/'y' is in no tensor/)
  })

  it('refuses a one_hot step outside the graph, which the tensor layout cannot hold', () => {
    const card = tinyCard({})
    card.preprocessing.steps = [
      { step: 'one_hot', in_graph: false, columns: ['x'], categories: [['a']] },
    ]
    expect(() => encodeRows(card, [{ x: 3 }])).toThrow(InferenceError)
  })

  it('gives tensors of zero rows for no rows', () => {
    const feeds = encodeRows(carPrice, [])
    expect(feeds.numeric?.dims).toEqual([0, 8])
    expect(feeds.categorical?.dims).toEqual([0, 8])
  })
})

describe('decodeRows', () => {
  const irisOutputs = (label: TensorData) => ({
    probabilities: tensor('float32', [2, 3], Float32Array.of(0.7, 0.2, 0.1, 0.1, 0.3, 0.6)),
    label,
  })

  it('reads a classifier row by row: label from the int64 output, probabilities by name', () => {
    const predictions = decodeRows(
      iris,
      irisOutputs(tensor('int64', [2], BigInt64Array.of(0n, 2n))),
      2,
    )
    expect(predictions).toEqual([
      {
        prediction: 'setosa',
        classIndex: 0,
        probabilities: {
          setosa: Math.fround(0.7),
          versicolor: Math.fround(0.2),
          virginica: Math.fround(0.1),
        },
      },
      {
        prediction: 'virginica',
        classIndex: 2,
        probabilities: {
          setosa: Math.fround(0.1),
          versicolor: Math.fround(0.3),
          virginica: Math.fround(0.6),
        },
      },
    ])
    expect(typeof predictions[0]?.probabilities?.setosa).toBe('number')
  })

  it('takes the int64 output as the answer even where it is not the argmax, and [N, 1] dims', () => {
    const outputs = irisOutputs(tensor('int64', [2, 1], BigInt64Array.of(1n, 1n)))
    expect(decodeRows(iris, outputs, 2).map((p) => p.prediction)).toEqual([
      'versicolor',
      'versicolor',
    ])
  })

  it('when a classifier has no int64 output, then answers the argmax of the probabilities', () => {
    const outputs: Feeds = { p: tensor('float32', [2, 2], Float32Array.of(0.9, 0.1, 0.25, 0.75)) }
    expect(decodeRows(tinyCard({}), outputs, 2)).toEqual([
      {
        prediction: 'no',
        classIndex: 0,
        probabilities: { no: Math.fround(0.9), yes: Math.fround(0.1) },
      },
      { prediction: 'yes', classIndex: 1, probabilities: { no: 0.25, yes: 0.75 } },
    ])
  })

  it('reads a regression row by row from dims [N, 1] or [N]', () => {
    const prices = Float32Array.of(4092.5, 29804.25)
    expect(decodeRows(carPrice, { price: tensor('float32', [2, 1], prices) }, 2)).toEqual([
      { prediction: 4092.5 },
      { prediction: 29804.25 },
    ])
    expect(decodeRows(carPrice, { price: tensor('float32', [2], prices) }, 2)).toEqual([
      { prediction: 4092.5 },
      { prediction: 29804.25 },
    ])
  })

  it.each([
    ['is missing', {}],
    ['has fewer rows than asked', { price: tensor('float32', [1, 1], Float32Array.of(1)) }],
    ['has two values a row', { price: tensor('float32', [2, 2], Float32Array.of(1, 2, 3, 4)) }],
    ['is NaN', { price: tensor('float32', [2, 1], Float32Array.of(1, Number.NaN)) }],
  ])('when the output %s, then fails with an InferenceError', (_, outputs) => {
    expect(() => decodeRows(carPrice, outputs as Feeds, 2)).toThrow(InferenceError)
  })

  it('when the graph answers a class with no label, then fails with an InferenceError', () => {
    const outputs = irisOutputs(tensor('int64', [2], BigInt64Array.of(0n, 3n)))
    expect(() => decodeRows(iris, outputs, 2)).toThrow(InferenceError)
  })
})

describe('the golden rows through ONNX Runtime, as one batch each', () => {
  const backend = createOnnxBackend({ intraOpNumThreads: 1, interOpNumThreads: 1 })
  const models: Record<string, LoadedModel> = {}

  beforeAll(async () => {
    for (const name of ['iris', 'car-price'] as const) {
      models[name] = await backend.load(shippedBytes(name))
    }
  })
  afterAll(() => Promise.all(Object.values(models).map((model) => model.release())))

  const near = (actual: number | undefined, expected: number, tolerance: number) =>
    expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(
      tolerance * Math.max(1, Math.abs(expected)),
    )

  it('iris answers every golden label and probability, in row order', async () => {
    const rows = irisGolden.cases.map((goldenCase) => goldenCase.input)
    const outputs = await models.iris?.run(encodeRows(iris, rows))
    const predictions = decodeRows(iris, outputs as Feeds, rows.length)
    const labels = ['setosa', 'versicolor', 'virginica']
    expect(predictions).toHaveLength(irisGolden.cases.length)
    // The golden cases cover all three classes, so a shuffled batch would not pass.
    expect(new Set(predictions.map((p) => p.prediction)).size).toBe(3)
    irisGolden.cases.forEach((goldenCase, i) => {
      const index = goldenCase.output.label as number
      expect(predictions[i]?.classIndex).toBe(index)
      expect(predictions[i]?.prediction).toBe(labels[index])
      const probabilities = goldenCase.output.probabilities as number[]
      labels.forEach((label, k) => {
        near(
          predictions[i]?.probabilities?.[label],
          probabilities[k] as number,
          irisGolden.tolerance,
        )
      })
    })
  })

  it('car-price answers every golden price, in row order, missing inputs included', async () => {
    const rows = carPriceGolden.cases.map((goldenCase) => goldenCase.input)
    expect(rows.some((row) => carPrice.inputs.some((input) => !(input.name in row)))).toBe(true)
    const outputs = await models['car-price']?.run(encodeRows(carPrice, rows))
    const predictions = decodeRows(carPrice, outputs as Feeds, rows.length)
    expect(predictions).toHaveLength(carPriceGolden.cases.length)
    carPriceGolden.cases.forEach((goldenCase, i) => {
      const [price] = [goldenCase.output.price as number | number[]].flat()
      near(predictions[i]?.prediction as number, price as number, carPriceGolden.tolerance)
    })
  })
})

describe('canonicalInputs', () => {
  it('is the same for the same inputs in another key order', () => {
    const reordered = { petal_width: 0.2, petal_length: 1.4, sepal_width: 3.5, sepal_length: 5.1 }
    expect(canonicalInputs(iris, reordered)).toBe(canonicalInputs(iris, flower))
  })

  it('is the same for an absent optional input and an explicit null', () => {
    expect(canonicalInputs(carPrice, { ...car, color: null, engine_cc: null })).toBe(
      canonicalInputs(carPrice, car),
    )
  })

  it('is the same for 1 and 1.0, and for numbers parsed from differently written JSON', () => {
    const written = JSON.parse(
      '{"sepal_length": 5.10, "sepal_width": 3.5e0, "petal_length": 1.40, "petal_width": 2e-1}',
    )
    expect(canonicalInputs(iris, written)).toBe(canonicalInputs(iris, flower))
    expect(canonicalInputs(iris, { ...flower, sepal_length: 1.0 })).toBe(
      canonicalInputs(iris, { ...flower, sepal_length: 1 }),
    )
  })

  it('differs for a different number, category, or a value against its absence', () => {
    const base = canonicalInputs(carPrice, car)
    const others = [
      canonicalInputs(carPrice, { ...car, mileage_km: 90_001 }),
      canonicalInputs(carPrice, { ...car, brand: 'volvo' }),
      canonicalInputs(carPrice, { ...car, color: 'black' }),
      canonicalInputs(carPrice, { ...car, doors: 5 }),
    ]
    expect(new Set([base, ...others]).size).toBe(5)
  })

  it('does not confuse a category that looks like a number with the number', () => {
    const card = tinyCard({
      inputs: [
        { name: 'a', type: 'category', description: 'a', required: false },
        { name: 'b', type: 'number', description: 'b', required: false },
      ],
    })
    expect(canonicalInputs(card, { a: '1' })).not.toBe(canonicalInputs(card, { b: 1 }))
    expect(canonicalInputs(card, { a: '1' })).not.toBe(canonicalInputs(card, { a: 1 }))
  })
})

describe('inputsJsonSchema', () => {
  const ajv = new Ajv({ allErrors: true, strict: true })

  it('describes an input with its type, bounds, unit, categories and default', () => {
    const schema = inputsJsonSchema(carPrice)
    const properties = schema.properties as Record<string, Record<string, unknown>>
    expect(properties.mileage_km).toEqual({
      type: 'number',
      description: 'odometer reading (km)',
      minimum: 0,
      maximum: 400000,
    })
    expect(properties.seats).toMatchObject({ type: ['integer', 'null'], default: 5 })
    expect(properties.fuel_type).toMatchObject({
      type: 'string',
      enum: ['petrol', 'diesel', 'hybrid', 'electric', 'lpg'],
    })
    expect(properties.color?.enum).toContain(null)
    expect(schema.required).toEqual(['year', 'mileage_km', 'brand', 'fuel_type', 'transmission'])
    expect(schema.additionalProperties).toBe(false)
  })

  it('when compiled with ajv, then accepts every golden input and refuses what checkInputs refuses', () => {
    for (const [card, golden] of [
      [iris, irisGolden],
      [carPrice, carPriceGolden],
    ] as const) {
      const validate = ajv.compile(inputsJsonSchema(card))
      for (const goldenCase of golden.cases) expect(validate(goldenCase.input)).toBe(true)
    }
    const validate = ajv.compile(inputsJsonSchema(carPrice))
    expect(validate({ ...car, color: null })).toBe(true)
    const refused = [
      { ...car, mileage_km: 400_001 },
      { ...car, year: 2018.5 },
      { ...car, fuel_type: 'Diesel' },
      { ...car, brand: null },
      { ...car, wheels: 4 },
      { mileage_km: 1 },
    ]
    for (const inputs of refused) {
      expect(checkInputs(carPrice, inputs, 'body.inputs')).not.toEqual([])
      expect(validate(inputs)).toBe(false)
    }
  })
})
