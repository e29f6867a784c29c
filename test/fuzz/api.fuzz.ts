import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildTestApp, type TestApp, testConfig } from '../helpers.js'
import { BROWSER_CLIENT, startTestProvider, type TestProvider } from '../oidc-provider.js'
import { createCallers } from './callers.js'
import { createPools } from './fixtures.js'
import { type OpenApiDocument, operationsOf } from './operations.js'
import { describeFailures, failureClasses, summary } from './report.js'
import { runFuzz } from './runner.js'
import { createVerdict } from './verdict.js'

/** Fixed, so a failure replays; FUZZ_SEED explores other inputs. */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_130)

const PUBLIC_URL = 'http://orderflow.test'
const CONSOLE = `${PUBLIC_URL}/console/signed-in`

let t: TestApp
let provider: TestProvider

beforeAll(async () => {
  // A real OpenID provider on a loopback port, so the single sign-on routes are in the
  // document and a login under fuzzed parameters reaches the provider's discovery.
  provider = await startTestProvider({
    redirectUri: `${PUBLIC_URL}/v1/auth/oidc/test/callback`,
    postLogoutRedirectUris: [CONSOLE],
    endSession: true,
  })
  // The shipped models, so predictions answer; their own database, as they activate models.
  t = await buildTestApp(
    {
      MODELS_REGISTER_SHIPPED: 'true',
      PUBLIC_URL,
      OIDC_PROVIDERS: JSON.stringify([
        {
          name: 'test',
          issuer: provider.issuer,
          client_id: BROWSER_CLIENT.id,
          role_claim: 'roles',
          role_map: { 'OrderFlow.User': 'user' },
        },
      ]),
      OIDC_TEST_CLIENT_SECRET: BROWSER_CLIENT.secret,
      OIDC_CLIENT_REDIRECT_URIS: CONSOLE,
    },
    { privateDatabase: true },
  )
})

afterAll(async () => {
  await t?.close()
  await provider?.close()
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
