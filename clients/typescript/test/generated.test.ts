import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { SERVICES_MODE } from '../../../test/helpers.js'
import { GENERATED_TYPES, generateTypes } from '../scripts/generate.js'

// Generating builds and migrates a private embedded instance of the service.
const GENERATION_TIMEOUT_MS = 120_000

describe('the generated client types', () => {
  // The generator always builds an embedded instance, whatever the suite's mode: one run
  // in CI (the embedded suite) checks it; the services run would repeat the same thing.
  it.skipIf(SERVICES_MODE)(
    'when the OpenAPI document changes, then the committed types must be regenerated (npm run client:generate)',
    async () => {
      const committed = await readFile(GENERATED_TYPES, 'utf8')
      const current = await generateTypes()
      // Compared as a whole: a diff of a 10,000-line file would drown the hint.
      expect(
        current === committed,
        'clients/typescript/src/openapi.generated.ts is out of date: run `npm run client:generate` and commit it',
      ).toBe(true)
    },
    GENERATION_TIMEOUT_MS,
  )
})
