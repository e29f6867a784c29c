import type { ModelInput, ReferenceDistribution } from '../../src/modules/models/card.js'
import { binOf } from '../../src/modules/models/monitoring/drift.js'
import { tidy } from './linear.js'

/** Bins of a numeric input's reference: deciles, so each holds about a tenth of training. */
const BINS = 10

/** The value below which a share `q` of the sorted `values` lies (nearest rank). */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

/**
 * Each input's distribution over the training rows, which the server measures drift
 * against: numeric inputs by decile bins (edges deduplicated, so an integer input with few
 * values gets fewer bins), categories by frequency. Missing values are left out, as the
 * server leaves them out of the logged window.
 */
export function referenceDistribution(
  inputs: readonly ModelInput[],
  rows: readonly Record<string, number | string | undefined>[],
): ReferenceDistribution {
  return {
    rows: rows.length,
    features: inputs.map((input) => {
      const present = rows.map((row) => row[input.name]).filter((value) => value !== undefined)
      if (input.type === 'category') {
        const categories = input.categories ?? [...new Set(present.map(String))].sort()
        const counts = categories.map(
          (category) => present.filter((value) => value === category).length,
        )
        return {
          name: input.name,
          kind: 'categorical' as const,
          categories,
          frequencies: counts.map((count) => tidy(count / present.length)),
        }
      }
      const sorted = (present as number[]).slice().sort((a, b) => a - b)
      const edges = [
        ...new Set(
          Array.from({ length: BINS - 1 }, (_, i) => tidy(quantile(sorted, (i + 1) / BINS))),
        ),
      ].filter((edge) => edge > (sorted[0] as number))
      const counts = new Array<number>(edges.length + 1).fill(0)
      for (const value of sorted) (counts[binOf(edges, value)] as number)++
      return {
        name: input.name,
        kind: 'numeric' as const,
        edges,
        frequencies: counts.map((count) => tidy(count / sorted.length)),
      }
    }),
  }
}
