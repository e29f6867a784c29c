import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type ModelCard, ModelCardSchema } from '../../src/modules/models/card.js'
import { cardInconsistencies } from '../../src/modules/models/card-consistency.js'
import { assertValid } from '../../src/platform/validation.js'

export type GoldenValue = number | number[]

/** Held-out rows with the outputs the training script computed for them. */
export interface GoldenFile {
  model: string
  version: string
  /** |actual - expected| <= tolerance * max(1, |expected|) for every output value. */
  tolerance: number
  cases: { input: Record<string, number | string>; output: Record<string, GoldenValue> }[]
}

export interface Artifacts {
  name: string
  onnx: Uint8Array
  card: ModelCard
  golden: GoldenFile
}

export const GOLDEN_TOLERANCE = 1e-5

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`

/** The files a model ships as: `<name>.onnx`, `<name>.card.json`, `<name>.golden.json`. */
export function artifactFiles(artifacts: Artifacts): Record<string, Uint8Array | string> {
  assertValid<ModelCard>(ModelCardSchema, artifacts.card, 'card')
  // The registry refuses a card that contradicts itself; refuse it here, before it ships.
  const problems = cardInconsistencies(artifacts.card)
  if (problems.length > 0) {
    const lines = problems.map((problem) => `  ${problem.path}: ${problem.message}`)
    throw new Error(`The ${artifacts.name} card contradicts itself:\n${lines.join('\n')}`)
  }
  return {
    [`${artifacts.name}.onnx`]: artifacts.onnx,
    [`${artifacts.name}.card.json`]: json(artifacts.card),
    [`${artifacts.name}.golden.json`]: json(artifacts.golden),
  }
}

export async function writeArtifacts(dir: string, artifacts: Artifacts): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const files = Object.entries(artifactFiles(artifacts))
  await Promise.all(files.map(([file, content]) => writeFile(join(dir, file), content)))
  return files.map(([file]) => join(dir, file))
}

/**
 * SHA-256 of the data set as CSV: a header line, then one line per row, `\n` line ends,
 * numbers in JavaScript's shortest round-trip form and missing values as empty fields.
 */
export function datasetSha256(
  header: readonly string[],
  rows: readonly (readonly (number | string | null)[])[],
): string {
  const lines = [header.join(','), ...rows.map((row) => row.map((v) => v ?? '').join(','))]
  return createHash('sha256')
    .update(`${lines.join('\n')}\n`)
    .digest('hex')
}
