import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildTestApp, type TestApp, testConfig } from '../helpers.js'
import { createCallers } from './callers.js'
import { createPools } from './fixtures.js'
import { type OpenApiDocument, operationsOf } from './operations.js'
import { describeFailures, failureClasses, summary } from './report.js'
import { runFuzz } from './runner.js'
import { createVerdict } from './verdict.js'

/** Fixed, so a failure replays; FUZZ_SEED explores other inputs. */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_130)

let t: TestApp

beforeAll(async () => {
  // The shipped models, so predictions answer; their own database, as they activate models.
  t = await buildTestApp({ MODELS_REGISTER_SHIPPED: 'true' }, { privateDatabase: true })
})

afterAll(async () => {
  await t?.close()
})

it('when every operation is sent generated valid and invalid requests as every role, then each answer keeps the OpenAPI document', async () => {
  const response = await t.app.inject({ url: '/openapi.json' })
  const document = response.json() as OpenApiDocument
  const operations = operationsOf(document)
  const { JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE } = testConfig()
  const callers = await createCallers(t, JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE)
  const pools = await createPools(t, callers)
  const judge = createVerdict(document.components?.schemas ?? {})

  const run = await runFuzz(t.app, document, operations, callers, pools, judge, {
    seed: SEED,
    valid: 4,
    invalid: 16,
    answerTimeoutMs: 5_000,
  })

  const classes = failureClasses(run)
  console.log(`\n${summary(run, operations)}\n`)
  expect(
    classes.length,
    `${classes.length} distinct failures (seed ${SEED}):\n${describeFailures(classes)}`,
  ).toBe(0)
})
