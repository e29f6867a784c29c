import { describe, expect, it } from 'vitest'
import { shippedCard } from '../../../test/models.js'
import type { ModelCard, PreprocessingStep } from './card.js'
import { cardInconsistencies } from './card-consistency.js'

/** A deep copy of the shipped car-price card, changed by `edit`. */
function carPrice(edit: (card: ModelCard) => void): ModelCard {
  const card = structuredClone(shippedCard('car-price'))
  edit(card)
  return card
}

const stepOf = <S extends PreprocessingStep['step']>(card: ModelCard, step: S) => {
  const index = card.preprocessing.steps.findIndex((candidate) => candidate.step === step)
  return {
    index,
    step: card.preprocessing.steps[index] as Extract<PreprocessingStep, { step: S }>,
  }
}
const STANDARDIZE = stepOf(shippedCard('car-price'), 'standardize').index
const IMPUTE = stepOf(shippedCard('car-price'), 'impute').index

const paths = (card: ModelCard) => cardInconsistencies(card).map((problem) => problem.path)

describe('cardInconsistencies', () => {
  it.each(['iris', 'car-price'] as const)(
    'finds nothing wrong with the shipped %s card',
    (name) => {
      expect(cardInconsistencies(shippedCard(name))).toEqual([])
    },
  )

  it('when a standardize step has a mean too few and a scale too many, then both arrays are named', () => {
    const card = carPrice((c) => {
      const { step } = stepOf(c, 'standardize')
      step.mean.pop()
      step.scale.push(1)
    })
    expect(cardInconsistencies(card)).toEqual([
      {
        path: `card.preprocessing.steps[${STANDARDIZE}].mean`,
        message: 'has 7 entries for 8 columns: one per column',
      },
      {
        path: `card.preprocessing.steps[${STANDARDIZE}].scale`,
        message: 'has 9 entries for 8 columns: one per column',
      },
    ])
  })

  it('when a step column names no input, then that column is named', () => {
    const card = carPrice((c) => {
      stepOf(c, 'standardize').step.columns[5] = 'weight'
    })
    expect(cardInconsistencies(card)).toEqual([
      {
        path: `card.preprocessing.steps[${STANDARDIZE}].columns[5]`,
        message: "'weight' is not an input",
      },
    ])
  })

  it('when an impute step has fewer values than columns, then its values are named', () => {
    const card = carPrice((c) => {
      stepOf(c, 'impute').step.values.pop()
    })
    expect(paths(card)).toEqual([`card.preprocessing.steps[${IMPUTE}].values`])
  })

  it('when a tensor lists an input twice, then the repeat and the input that never reaches the graph are named', () => {
    const card = carPrice((c) => {
      ;(c.preprocessing.tensors[0] as { columns: string[] }).columns[3] = 'engine_cc'
    })
    expect(cardInconsistencies(card)).toEqual([
      {
        path: 'card.preprocessing.tensors[0].columns[3]',
        message: "repeats 'engine_cc' (columns[2])",
      },
      {
        path: 'card.inputs[3].name',
        message: "'power_kw' is in no tensor's columns: it would never reach the graph",
      },
    ])
  })

  it('when an input has its minimum above its maximum, then the minimum is named', () => {
    const card = carPrice((c) => {
      Object.assign(c.inputs[0] as object, { minimum: 2030, maximum: 2000 })
    })
    expect(cardInconsistencies(card)).toEqual([
      {
        path: 'card.inputs[0].minimum',
        message: 'is 2030, above the maximum 2000: no value could pass',
      },
    ])
  })

  it('when a scale is 0, then that scale is named', () => {
    const card = carPrice((c) => {
      stepOf(c, 'standardize').step.scale[1] = 0
    })
    expect(paths(card)).toEqual([`card.preprocessing.steps[${STANDARDIZE}].scale[1]`])
  })

  it('when a default disagrees with the value its impute step fills in, then the default is named', () => {
    const card = carPrice((c) => {
      ;(c.inputs[2] as { default: number }).default = 1600
    })
    expect(cardInconsistencies(card)).toEqual([
      {
        path: 'card.inputs[2].default',
        message: `is 1600, but preprocessing.steps[${IMPUTE}] imputes 1520: they must agree`,
      },
    ])
  })

  it('when a default or an imputed value is outside what its input accepts, then each is named', () => {
    const card = carPrice((c) => {
      ;(c.inputs[6] as { default: number }).default = 12
      stepOf(c, 'impute').step.values[6] = 12
      const categorical = c.preprocessing.steps[1] as { values: string[] }
      categorical.values[0] = 'trabant'
    })
    expect(paths(card)).toEqual([
      'card.inputs[6].default',
      `card.preprocessing.steps[${IMPUTE}].values[6]`,
      'card.preprocessing.steps[1].values[0]',
      // 'trabant' is also not what brand's default would be, but brand has no default.
    ])
  })

  it('when a one_hot step lacks a category its input accepts, then that category list is named', () => {
    const card = carPrice((c) => {
      const { step } = stepOf(c, 'one_hot')
      ;(step.categories[1] as string[]).pop()
    })
    expect(cardInconsistencies(card)).toEqual([
      {
        path: 'card.preprocessing.steps[3].categories[1]',
        message: "lacks 'lpg', which input 'fuel_type' accepts",
      },
    ])
  })

  it('when every problem comes at once, then every one is listed', () => {
    const card = carPrice((c) => {
      stepOf(c, 'standardize').step.mean.pop()
      stepOf(c, 'standardize').step.scale[0] = 0
      stepOf(c, 'impute').step.values.pop()
      Object.assign(c.inputs[1] as object, { minimum: 5, maximum: 1 })
    })
    expect(paths(card)).toEqual([
      'card.inputs[1].minimum',
      `card.preprocessing.steps[${IMPUTE}].values`,
      `card.preprocessing.steps[${STANDARDIZE}].mean`,
      `card.preprocessing.steps[${STANDARDIZE}].scale[0]`,
    ])
  })
})
