import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import openapiTS, { astToString, COMMENT_HEADER, type OpenAPI3 } from 'openapi-typescript'
import { buildApp } from '../../../src/app.js'
import { loadConfig } from '../../../src/config.js'
import { createEmbeddedDatabase } from '../../../src/db/client.js'
import { migrate } from '../../../src/db/migrate.js'
import { ProblemSchema } from '../../../src/shared/schemas.js'

/** The committed output, which `npm run client:generate` rewrites. */
export const GENERATED_TYPES = new URL('../src/openapi.generated.ts', import.meta.url)

/**
 * The service's OpenAPI document as a fresh embedded instance serves it, built in-process:
 * no running server, no network. Settings come from the defaults, never from the caller's
 * environment or `.env`, and no model is registered, so the document — and the client —
 * depend on the code alone; a served model's own operations are left to the runtime
 * document, as they come and go with registrations.
 */
export async function openApiDocument(): Promise<OpenAPI3> {
  const dataDir = await mkdtemp(join(tmpdir(), 'orderflow-client-'))
  const database = await createEmbeddedDatabase()
  try {
    await migrate(database)
    const config = loadConfig(
      {
        NODE_ENV: 'development',
        LOG_LEVEL: 'silent',
        MODELS_REGISTER_SHIPPED: 'false',
        DATA_DIR: dataDir,
      },
      null,
    )
    const app = await buildApp(config, { database, redis: null })
    try {
      const response = await app.inject({ url: '/openapi.json' })
      if (response.statusCode !== 200)
        throw new Error(`/openapi.json answered ${response.statusCode}: ${response.body}`)
      return response.json() as OpenAPI3
    } finally {
      await app.close()
    }
  } finally {
    await database.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** JSON with sorted keys: two schemas that differ only in key order compare equal. */
function canonical(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical(value[key] as Json)}`)
    return `{${entries.join(',')}}`
  }
  return JSON.stringify(value)
}

const problemShape = (schema: Record<string, Json>) => canonical({ ...schema, description: null })

/**
 * The service inlines its one problem schema in every error response (each with its own
 * description), which would repeat the same type several hundred times. Naming it once,
 * as `components.schemas.Problem`, keeps the types a third of the size and gives clients
 * one type to refer to.
 */
export function nameProblemSchema(document: OpenAPI3): OpenAPI3 {
  const problem = JSON.parse(JSON.stringify(ProblemSchema)) as Record<string, Json>
  const shape = problemShape(problem)
  const ref = { $ref: '#/components/schemas/Problem' }
  const copy = structuredClone(document) as OpenAPI3 & { paths: Record<string, Json> }
  for (const item of Object.values(copy.paths)) {
    for (const operation of Object.values(item as Record<string, Json>)) {
      const responses = (operation as { responses?: Record<string, Json> }).responses ?? {}
      for (const response of Object.values(responses)) {
        const content = (response as { content?: Record<string, { schema?: Json }> }).content
        for (const media of Object.values(content ?? {})) {
          const schema = media.schema as Record<string, Json> | undefined
          if (schema && problemShape(schema) === shape) media.schema = ref
        }
      }
    }
  }
  copy.components = {
    ...copy.components,
    schemas: { ...copy.components?.schemas, Problem: problem as never },
  }
  return copy
}

/** The client's types, as openapi-typescript writes them for the current document. */
export async function generateTypes(): Promise<string> {
  const nodes = await openapiTS(nameProblemSchema(await openApiDocument()), {
    // Every response declares its properties; an unlisted one is an error, not `unknown`.
    additionalProperties: false,
    alphabetize: true,
  })
  return `${COMMENT_HEADER}${astToString(nodes)}`
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await writeFile(GENERATED_TYPES, await generateTypes())
  console.log(`wrote ${fileURLToPath(GENERATED_TYPES)}`)
}
