import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { type Artifacts, writeArtifacts } from './training/artifacts.js'
import { trainCarPrice } from './training/car-price.js'
import { trainIris } from './training/iris.js'
import { trainShapes } from './training/shapes.js'
import { CORPUS_FILE, trainTinyText } from './training/tiny-text.js'
import { tinyTextCorpus } from './training/tiny-text-corpus.js'

/** Every shipped predictive model, by name. Training is deterministic: same code, same bytes. */
export const TRAINERS: Record<string, () => Artifacts> = {
  iris: trainIris,
  'car-price': trainCarPrice,
}

/** Shipped text-generation models: their golden files hold next-character logits, not rows. */
export const TEXT_TRAINERS: Record<string, () => Artifacts> = {
  'tiny-text': () => trainTinyText(),
}

/** Shipped image models: their golden files hold pictures as raw RGB bytes, not rows. */
export const IMAGE_TRAINERS: Record<string, () => Artifacts> = {
  shapes: trainShapes,
}

const ALL_TRAINERS = { ...TRAINERS, ...TEXT_TRAINERS, ...IMAGE_TRAINERS }

export const MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url))

/** Trains the named models (all by default) and writes their files into `dir`. */
export async function train(dir: string, names = Object.keys(TRAINERS)): Promise<string[]> {
  const written: string[] = []
  for (const name of names) {
    const trainer = ALL_TRAINERS[name]
    if (!trainer)
      throw new Error(`unknown model "${name}"; known: ${Object.keys(ALL_TRAINERS).join(', ')}`)
    written.push(...(await writeArtifacts(dir, trainer())))
  }
  return written
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    options: {
      out: { type: 'string', default: MODELS_DIR },
      corpus: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  })
  if (values.corpus) {
    await mkdir(new URL('.', CORPUS_FILE), { recursive: true })
    await writeFile(CORPUS_FILE, tinyTextCorpus())
    console.log(`wrote ${fileURLToPath(CORPUS_FILE)}`)
  }
  const files = await train(
    values.out,
    positionals.length > 0 ? positionals : Object.keys(ALL_TRAINERS),
  )
  for (const file of files) console.log(`wrote ${file}`)
}
