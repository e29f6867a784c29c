import { describe, expect, it } from 'vitest'
import { createSampler, createStopFilter } from './sampler.js'

const LOGITS = [2, 1, 0.5, -1]

describe('createSampler', () => {
  it('when the temperature is 0, then it always picks the most likely token', () => {
    const sample = createSampler({ temperature: 0, topP: 1, seed: 1 })
    expect(Array.from({ length: 20 }, () => sample(LOGITS))).toEqual(Array(20).fill(0))
  })

  it('when two samplers share a seed, then they draw the same tokens, and another seed draws others', () => {
    const draw = (seed: number) => {
      const sample = createSampler({ temperature: 1.5, topP: 1, seed })
      return Array.from({ length: 50 }, () => sample(LOGITS))
    }
    expect(draw(42)).toEqual(draw(42))
    expect(draw(42)).not.toEqual(draw(43))
  })

  it('when top_p keeps only the most likely mass, then tokens outside the nucleus are never drawn', () => {
    const sample = createSampler({ temperature: 1, topP: 0.5, seed: 9 })
    // softmax(2, 1, 0.5, -1) puts 0.61 on the first token: the nucleus is that token alone.
    expect(new Set(Array.from({ length: 200 }, () => sample(LOGITS)))).toEqual(new Set([0]))
  })

  it('when the temperature is high, then every token is drawn in time', () => {
    const sample = createSampler({ temperature: 2, topP: 1, seed: 5 })
    expect(new Set(Array.from({ length: 500 }, () => sample(LOGITS)))).toEqual(
      new Set([0, 1, 2, 3]),
    )
  })
})

describe('createStopFilter', () => {
  it('when text may begin a stop sequence, then it is held back until it cannot', () => {
    const filter = createStopFilter(['END'])
    expect(filter.push('ab')).toEqual({ emit: 'ab', stopped: false })
    expect(filter.push('E')).toEqual({ emit: '', stopped: false })
    expect(filter.push('x')).toEqual({ emit: 'Ex', stopped: false })
  })

  it('when a stop sequence completes, then the text before it is sent and the sequence never is', () => {
    const filter = createStopFilter(['\n\n', 'END'])
    expect(filter.push('one E').emit).toBe('one ')
    expect(filter.push('N')).toEqual({ emit: '', stopped: false })
    expect(filter.push('D tail')).toEqual({ emit: '', stopped: true })
  })

  it('when generation ends first, then flush gives back what was held', () => {
    const filter = createStopFilter(['END'])
    filter.push('abcEN')
    expect(filter.flush()).toBe('EN')
    expect(filter.flush()).toBe('')
  })
})
