import type { ModelCard, ReferenceFeature } from '../card.js'

/**
 * Population stability index: how far the inputs logged in a window have moved from the
 * distribution the model was trained on, per input. PSI = Σ (a - e) · ln(a / e) over the
 * bins, with a and e the observed and expected shares. The usual reading: below 0.1 stable,
 * 0.1-0.2 moderate, above 0.2 a shift worth a look (the default threshold).
 */

/**
 * Stands in for an empty bin on either side, as is customary, so one empty bin gives a
 * large but finite index instead of infinity.
 */
const EMPTY_SHARE = 1e-4

export interface FeatureDrift {
  name: string
  kind: ReferenceFeature['kind']
  /** Logged values of this input in the window (missing ones are not counted). */
  count: number
  /** Null when the window holds no value of the input. */
  psi: number | null
  drifted: boolean
}

/** The bin of `value` among `edges` (sorted): a value on an edge belongs to the bin above. */
export function binOf(edges: readonly number[], value: number): number {
  let low = 0
  let high = edges.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (value >= (edges[middle] as number)) low = middle + 1
    else high = middle
  }
  return low
}

export function populationStabilityIndex(
  expected: readonly number[],
  observed: readonly number[],
): number {
  let sum = 0
  for (let bin = 0; bin < expected.length; bin++) {
    const e = Math.max(expected[bin] as number, EMPTY_SHARE)
    const a = Math.max(observed[bin] as number, EMPTY_SHARE)
    sum += (a - e) * Math.log(a / e)
  }
  return sum
}

/**
 * Counts of one input's logged values per reference bin. A category the training data never
 * had counts in no bin of the reference; it adds its own bin with an expected share of
 * zero, so an unseen category shows as drift.
 */
function observedCounts(
  feature: ReferenceFeature,
  values: readonly unknown[],
): { counts: number[]; expected: number[]; count: number } {
  const expected = [...feature.frequencies]
  const counts = expected.map(() => 0)
  let count = 0
  if (feature.kind === 'numeric') {
    for (const value of values) {
      if (typeof value !== 'number' || !Number.isFinite(value)) continue
      ;(counts[binOf(feature.edges, value)] as number)++
      count++
    }
    return { counts, expected, count }
  }
  const index = new Map(feature.categories.map((category, position) => [category, position]))
  let unseen = 0
  for (const value of values) {
    if (typeof value !== 'string') continue
    const position = index.get(value)
    if (position === undefined) unseen++
    else (counts[position] as number)++
    count++
  }
  if (unseen > 0) {
    counts.push(unseen)
    expected.push(0)
  }
  return { counts, expected, count }
}

/** Each reference input's PSI between the card's training distribution and `rows`. */
export function driftOf(
  card: Pick<ModelCard, 'reference'>,
  rows: readonly Record<string, unknown>[],
  threshold: number,
): FeatureDrift[] {
  return (card.reference?.features ?? []).map((feature) => {
    const { counts, expected, count } = observedCounts(
      feature,
      rows.map((row) => row[feature.name]),
    )
    const psi =
      count === 0
        ? null
        : populationStabilityIndex(
            expected,
            counts.map((n) => n / count),
          )
    return {
      name: feature.name,
      kind: feature.kind,
      count,
      psi,
      drifted: psi !== null && psi > threshold,
    }
  })
}
