import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { type Artifacts, writeArtifacts } from './training/artifacts.js'
import { trainCarPrice } from './training/car-price.js'
import { trainIris } from './training/iris.js'

/** Every shipped model, by name. Training is deterministic: same code, same bytes. */
export const TRAINERS: Record<string, () => Artifacts> = {
  iris: trainIris,
  'car-price': trainCarPrice,
}

export const MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url))

/** Trains the named models (all by default) and writes their files into `dir`. */
export async function train(dir: string, names = Object.keys(TRAINERS)): Promise<string[]> {
  const written: string[] = []
  for (const name of names) {
    const trainer = TRAINERS[name]
    if (!trainer)
      throw new Error(`unknown model "${name}"; known: ${Object.keys(TRAINERS).join(', ')}`)
    written.push(...(await writeArtifacts(dir, trainer())))
  }
  return written
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    options: { out: { type: 'string', default: MODELS_DIR } },
    allowPositionals: true,
  })
  const files = await train(values.out, positionals.length > 0 ? positionals : undefined)
  for (const file of files) console.log(`wrote ${file}`)
}
