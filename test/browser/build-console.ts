import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { CONSOLE_DIST } from '../../src/platform/console.js'

/** The tests drive the built console; a checkout that never built it builds it once here. */
export default function setup() {
  if (existsSync(join(CONSOLE_DIST, 'index.html'))) return
  execFileSync('npm', ['run', 'build:console'], { stdio: 'inherit' })
}
