import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'

// Run by `npm install` (the `prepare` script): builds the web console. An install without
// dev dependencies (`--omit=dev`) has no Vite to build with; it goes on without the console,
// whose route then says how to build it.
const require = createRequire(import.meta.url)
try {
  require.resolve('vite')
} catch {
  console.warn('orderflow: dev dependencies absent, web console not built')
  process.exit(0)
}
execFileSync('npm', ['run', 'build:console'], { stdio: 'inherit' })
