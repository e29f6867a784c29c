/**
 * Builds dist/: the service's entries bundled with esbuild, as `npm run build:server` (and so
 * `npm run build`) does. Type checking is `npm run typecheck`'s; esbuild only strips types.
 *
 * Why a bundle rather than one file per source: a start imported some 1,400–1,700 files, and
 * Node's module loader (file probes, the CommonJS export lexer ESM runs over every CommonJS
 * package, one compile per file) was most of the main thread's start-up CPU. The bundle keeps
 * what loads on first use on first use: code splitting turns each dynamic `import()` (BullMQ,
 * nodemailer, the dataset formats, the OpenTelemetry SDK, ...) into a chunk of its own that a
 * start does not read.
 */
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build, type Metafile } from 'esbuild'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/**
 * The entries, by their path under src/; each lands at the same path under dist/ as .js.
 * Thread entries are started by that path (shared/project-files.ts: startThread);
 * app, config and access-tokens are what the benchmark's server entry imports from dist/.
 */
export const ENTRIES = [
  'server',
  'worker',
  'cli',
  'db/pglite-worker',
  'modules/models/runtime/onnx-worker',
  'app',
  'config',
  'modules/auth/access-tokens',
]

/**
 * CommonJS packages the sources import on first use (`await import('undici')`). In a split
 * bundle such an import() lands on a chunk whose only export is `default` (module.exports),
 * where Node's own loader also gives the named exports it finds in the package; loading them
 * from node_modules keeps Node's behaviour, and costs a start nothing, as a start does not
 * load them. test/build.test.ts fails when another one appears.
 */
const FIRST_USE_COMMONJS = [
  '@opentelemetry/context-async-hooks',
  '@opentelemetry/core',
  '@opentelemetry/exporter-trace-otlp-http',
  '@opentelemetry/resources',
  '@opentelemetry/sdk-trace-base',
  'pg-copy-streams',
  'undici',
]

/**
 * Packages loaded from node_modules at run time rather than bundled: native addons (and the
 * optional native speed-ups other packages probe for), and packages that find files of their
 * own next to their code, which a bundle would move away from them: PGlite its WASM and data
 * files from `import.meta.url`, Swagger UI its static files from `__dirname`, ioredis the
 * version it reports to Redis from its package.json. tsx only runs the sources.
 */
const EXTERNAL = [
  ...FIRST_USE_COMMONJS,
  '@electric-sql/pglite',
  '@fastify/swagger-ui',
  '@node-rs/argon2',
  'bufferutil',
  'ioredis',
  'msgpackr-extract',
  'onnxruntime-node',
  'pg-native',
  'sharp',
  'tsx',
  'utf-8-validate',
]

/**
 * CommonJS inside an ES module bundle: esbuild's `require` shim throws unless a real
 * `require` is in scope, and bundled CommonJS packages require Node's built-in modules.
 */
const BANNER = [
  "import { createRequire as __bundleCreateRequire } from 'node:module';",
  'const require = __bundleCreateRequire(import.meta.url);',
].join('\n')

/** Bundles the entries into `outDir` (emptied first) and returns esbuild's metafile. */
export async function bundle(outDir: string): Promise<Metafile> {
  await rm(outDir, { recursive: true, force: true })
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: ENTRIES.map((entry) => ({ in: `src/${entry}.ts`, out: entry })),
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    chunkNames: 'chunks/[name]-[hash]',
    external: EXTERNAL,
    banner: { js: BANNER },
    sourcemap: true,
    // V8 keeps every script's source text for as long as the script lives (it compiles
    // functions lazily, from that text), so whitespace and syntax are minified. Identifiers are
    // not, so class and function names stay as written for logs, errors and profiles without
    // esbuild's `keepNames`: that wraps every named function it creates, closures made per
    // request included, in an `Object.defineProperty` call, and cost an order read 16-18 % more
    // CPU than the unbundled build (docs/ARCHITECTURE.md, "Start-up and idle memory").
    minifyWhitespace: true,
    minifySyntax: true,
    metafile: true,
    logLevel: 'warning',
    legalComments: 'linked',
  })
  // Which inputs went into which output, and who imports what: `esbuild --analyze` reads it.
  await writeFile(join(outDir, 'meta.json'), JSON.stringify(result.metafile))
  return result.metafile
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await bundle(join(ROOT, 'dist'))
}
