import { randomInt } from 'node:crypto'

export interface SamplingOptions {
  /** 0 picks the most likely token every time; higher flattens the distribution. */
  temperature: number
  /** Nucleus sampling: draw only among the most likely tokens whose probabilities sum to top_p. */
  topP: number
  /** The same seed, prompt and options give the same text; a random one when absent. */
  seed?: number
}

/**
 * mulberry32: a seedable generator, so that a seed reproduces a text on any machine;
 * Math.random cannot be seeded.
 */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Draws token indexes from logits with temperature and top-p, from one seeded stream. */
export function createSampler({ temperature, topP, seed }: SamplingOptions) {
  const next = mulberry32(seed ?? randomInt(2 ** 32))
  return (logits: ArrayLike<number>): number => {
    let best = 0
    for (let i = 1; i < logits.length; i++) if ((logits[i] ?? 0) > (logits[best] ?? 0)) best = i
    if (temperature === 0) return best
    const max = logits[best] ?? 0
    const weights = Array.from(logits, (logit) => Math.exp((logit - max) / temperature))
    const total = weights.reduce((sum, weight) => sum + weight, 0)
    // Most likely first; ties keep index order, so the draw is the same on every machine.
    const order = weights
      .map((_, index) => index)
      .sort((a, b) => (weights[b] ?? 0) - (weights[a] ?? 0) || a - b)
    const kept: number[] = []
    let mass = 0
    for (const index of order) {
      kept.push(index)
      mass += (weights[index] ?? 0) / total
      if (mass >= topP) break
    }
    let target = next() * kept.reduce((sum, index) => sum + (weights[index] ?? 0), 0)
    for (const index of kept) {
      target -= weights[index] ?? 0
      if (target < 0) return index
    }
    return kept[kept.length - 1] ?? best
  }
}

/**
 * Holds back generated text that could be the start of a stop sequence, so that a stop
 * sequence is never streamed (as the OpenAI API behaves) while everything else streams as
 * soon as it is known.
 */
export function createStopFilter(stops: readonly string[]) {
  let pending = ''
  return {
    /** Adds text; answers what may be sent now, and whether a stop sequence was met. */
    push(text: string): { emit: string; stopped: boolean } {
      pending += text
      let first = -1
      for (const stop of stops) {
        const at = pending.indexOf(stop)
        if (at >= 0 && (first < 0 || at < first)) first = at
      }
      if (first >= 0) {
        const emit = pending.slice(0, first)
        pending = ''
        return { emit, stopped: true }
      }
      let keep = pending.length
      for (let start = 0; start < pending.length; start++) {
        const tail = pending.slice(start)
        if (stops.some((stop) => stop.startsWith(tail))) {
          keep = start
          break
        }
      }
      const emit = pending.slice(0, keep)
      pending = pending.slice(keep)
      return { emit, stopped: false }
    },
    /** What was held back, at the end of generation. */
    flush(): string {
      const rest = pending
      pending = ''
      return rest
    },
  }
}
