import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker, type WorkerOptions } from 'node:worker_threads'

/**
 * The project's files outside the code (package.json, migrations/, models/, console/dist/)
 * and the entries of its threads, found from wherever this module runs: its source
 * (src/shared/, through tsx or vitest) or the bundle (a chunk of dist/, whose directory says
 * nothing about the source file a path was written in). Paths relative to `import.meta.url`
 * would differ between the two, so every such file is reached from the project root.
 */
const HERE = fileURLToPath(import.meta.url)

/** True when this module runs from its TypeScript source rather than from the build. */
const FROM_SOURCES = HERE.endsWith('.ts')

/** The nearest directory above this module that holds a package.json: the project root. */
function findProjectRoot(from: string): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`)
  }
}

export const PROJECT_ROOT = findProjectRoot(HERE)

/** A file or directory of the project, from its root (`join` keeps a trailing '/'). */
export function projectPath(...segments: string[]): string {
  return join(PROJECT_ROOT, ...segments)
}

/**
 * Starts a thread on one of the project's thread entries, named by its path under src/
 * without extension (`db/pglite-worker`). The build writes each entry to the same path under
 * dist/ (scripts/build.ts). From TypeScript sources (`npm start` runs them through tsx, tests
 * through vitest) the new thread has no TypeScript loader, so it registers tsx's before
 * loading its entry.
 */
export function startThread(entry: string, options: WorkerOptions): Worker {
  if (!FROM_SOURCES) {
    return new Worker(pathToFileURL(projectPath('dist', `${entry}.js`)), options)
  }
  const tsx = createRequire(import.meta.url).resolve('tsx/cjs/api')
  const source = projectPath('src', `${entry}.ts`)
  const code = `require(${JSON.stringify(tsx)}).register();require(${JSON.stringify(source)})`
  return new Worker(code, { ...options, eval: true })
}
