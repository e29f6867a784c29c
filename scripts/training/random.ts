/**
 * A seeded PRNG (mulberry32). Math.random cannot be seeded, and ten lines are not worth a
 * dependency: what matters is that the same seed gives the same numbers on every machine.
 */
export function createRandom(seed: number) {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (maxExclusive: number): number => Math.floor(next() * maxExclusive),
    /** Standard normal by Box-Muller; 1 - next() keeps the logarithm finite. */
    normal: (): number => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
    pick: <T>(items: readonly T[], weights?: readonly number[]): T => {
      if (!weights) return items[Math.floor(next() * items.length)] as T
      const total = weights.reduce((sum, weight) => sum + weight, 0)
      let target = next() * total
      for (let i = 0; i < items.length; i++) {
        target -= weights[i] as number
        if (target < 0) return items[i] as T
      }
      return items[items.length - 1] as T
    },
    shuffle: <T>(items: readonly T[]): T[] => {
      const copy = [...items]
      for (let i = copy.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1))
        ;[copy[i], copy[j]] = [copy[j] as T, copy[i] as T]
      }
      return copy
    },
  }
}

export type Random = ReturnType<typeof createRandom>
