import { execFileSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CONSOLE_DIST } from '../../src/platform/console.js'

const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url))

function newestSource(dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'dist' || entry.name === 'node_modules') continue
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs)
  }
  return newest
}

/** The tests drive the built console: built here when missing or older than its sources. */
export default function setup() {
  let built = 0
  try {
    built = statSync(join(CONSOLE_DIST, 'index.html')).mtimeMs
  } catch {
    // Not built yet.
  }
  if (built >= newestSource(CONSOLE_DIR)) return
  // Vitest sets NODE_ENV=test, under which Vite would bundle React's development build.
  execFileSync('npm', ['run', 'build:console'], {
    stdio: 'inherit',
    env: { ...process.env, NODE_ENV: 'production' },
  })
}
