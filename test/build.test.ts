import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Metafile } from 'esbuild'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundle } from '../scripts/build.js'
import { SERVICES_MODE } from './helpers.js'
import { NOT_AT_START } from './not-at-start.js'

/** The output built from a source entry, e.g. `src/server.ts`. */
function outputOf(meta: Metafile, source: string): string | undefined {
  return Object.keys(meta.outputs).find((path) => meta.outputs[path]?.entryPoint === source)
}

/**
 * The npm packages an output loads before its first line runs: the inputs of every output it
 * reaches through static imports, and the packages it imports from node_modules (externals).
 * Dynamic `import()`s are left out: each is a chunk read on first use.
 */
function packagesLoadedWith(meta: Metafile, output: string): Set<string> {
  const packages = new Set<string>()
  const seen = new Set<string>()
  const pending = [output]
  for (let path = pending.pop(); path !== undefined; path = pending.pop()) {
    if (seen.has(path)) continue
    seen.add(path)
    const built = meta.outputs[path]
    if (!built) throw new Error(`no output ${path}`)
    for (const input of Object.keys(built.inputs)) {
      const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)
      if (match?.[1]) packages.add(match[1])
    }
    for (const imported of built.imports) {
      if (imported.kind !== 'import-statement') continue
      if (!imported.external) pending.push(imported.path)
      else if (!imported.path.startsWith('node:')) packages.add(packageName(imported.path))
    }
  }
  return packages
}

function packageName(specifier: string): string {
  const parts = specifier.split('/')
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/')
}

/** Every entry the sources start a thread on (`startThread('db/pglite-worker', ...)`). */
async function threadEntries(): Promise<string[]> {
  const files = await readdir('src', { recursive: true })
  const entries: string[] = []
  for (const file of files.filter((name) => name.endsWith('.ts') && !name.endsWith('.test.ts'))) {
    const source = await readFile(join('src', file), 'utf8')
    for (const call of source.matchAll(/startThread\(\s*'([^']+)'/g)) entries.push(call[1] ?? '')
  }
  return entries
}

// The build does not depend on the database mode; the services run would only repeat it.
describe.skipIf(SERVICES_MODE)('the bundled build', { timeout: 120_000 }, () => {
  let outDir: string
  let meta: Metafile

  // A whole build: seconds on a quiet machine, far more on a loaded CI runner.
  beforeAll(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'orderflow-build-'))
    meta = await bundle(outDir)
  }, 120_000)

  afterAll(async () => {
    await rm(outDir, { recursive: true, force: true })
  })

  it('when the server starts from the bundle, then it loads none of the packages kept for first use', () => {
    const server = outputOf(meta, 'src/server.ts')
    expect(server).toBeDefined()
    const loaded = packagesLoadedWith(meta, server ?? '')
    // The server's own dependencies are there, so an absence below means something.
    expect([...loaded]).toEqual(expect.arrayContaining(['fastify', 'drizzle-orm', 'typebox']))
    expect([...loaded].filter((name) => NOT_AT_START.includes(name))).toEqual([])
    // Each mode's database driver loads with the mode's first connection.
    expect(loaded).not.toContain('@electric-sql/pglite')
    expect(loaded).not.toContain('pg')
  })

  it('when a package is imported on first use, then its chunk has named exports, as Node gives a CommonJS package', () => {
    const onFirstUse = new Set(
      Object.values(meta.outputs).flatMap((output) =>
        output.imports
          .filter((imported) => imported.kind === 'dynamic-import' && !imported.external)
          .map((imported) => imported.path),
      ),
    )
    // The first-use imports the sources make are there, so an absence below means something.
    expect(onFirstUse.size).toBeGreaterThan(5)
    const defaultOnly = [...onFirstUse].filter((path) => {
      const output = meta.outputs[path]
      return output?.entryPoint?.startsWith('node_modules/') && output.exports.join() === 'default'
    })
    expect(defaultOnly.map((path) => meta.outputs[path]?.entryPoint)).toEqual([])
  })

  it('when the sources start a thread, then the build has its entry at the same path', async () => {
    const entries = await threadEntries()
    expect(entries).toEqual(
      expect.arrayContaining(['db/pglite-worker', 'modules/models/runtime/onnx-worker']),
    )
    for (const entry of entries) {
      const output = outputOf(meta, `src/${entry}.ts`)
      expect(output, entry).toBeDefined()
      expect(output?.endsWith(`/${entry}.js`), output).toBe(true)
    }
  })
})
