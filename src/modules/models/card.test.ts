import { describe, expect, it } from 'vitest'
import { assertValid } from '../../platform/validation.js'
import { ValidationFailed } from '../../shared/errors.js'
import { type ModelCard, ModelCardSchema } from './card.js'

const card: ModelCard = {
  name: 'tiny',
  version: '1.0.0',
  task: 'regression',
  description: 'y = 2x',
  inputs: [{ name: 'x', type: 'number', description: 'x', unit: 'm', required: false, default: 0 }],
  preprocessing: {
    tensors: [{ name: 'input', dtype: 'float32', shape: ['N', 1], columns: ['x'], missing: 'NaN' }],
    steps: [{ step: 'impute', in_graph: true, columns: ['x'], strategy: 'median', values: [0] }],
  },
  outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 1], description: 'y', unit: 'm' }],
  training: {
    algorithm: 'by hand',
    hyperparameters: {},
    seed: 1,
    train_rows: 1,
    test_rows: 1,
  },
  metrics: { rmse: 0 },
  training_data_sha256: 'a'.repeat(64),
  created_at: '2026-11-25T00:00:00Z',
}

const errorsOf = (value: unknown) => {
  try {
    assertValid(ModelCardSchema, value, 'card')
    return []
  } catch (error) {
    if (!(error instanceof ValidationFailed)) throw error
    return error.errors.map((fieldError) => fieldError.path)
  }
}

describe('ModelCardSchema', () => {
  it('accepts a complete card', () => {
    expect(errorsOf(card)).toEqual([])
  })

  it('rejects a model name that is not kebab-case and an input name that is not snake_case', () => {
    const bad = { ...card, name: 'Tiny Model', inputs: [{ ...card.inputs[0], name: 'X-Value' }] }
    expect(errorsOf(bad)).toEqual(['card.name', 'card.inputs[0].name'])
  })

  it('rejects an unknown input type, preprocessing step and extra field', () => {
    const bad = {
      ...card,
      inputs: [{ ...card.inputs[0], type: 'text' }],
      preprocessing: {
        ...card.preprocessing,
        steps: [{ step: 'pca', in_graph: true, columns: ['x'] }],
      },
      extra: true,
    }
    const paths = errorsOf(bad)
    expect(paths).toContain('card.inputs[0].type')
    expect(paths).toContain('card.preprocessing.steps[0]')
    expect(paths).toContain('card.extra')
  })

  it('rejects a training-data hash that is not a SHA-256 hex digest', () => {
    expect(errorsOf({ ...card, training_data_sha256: 'abc' })).toEqual([
      'card.training_data_sha256',
    ])
  })
})
