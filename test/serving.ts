import type { ModelCard } from '../src/modules/models/card.js'
import {
  createTestBackend,
  type TestBackend,
  type TestModelSpec,
  testModelBytes,
} from '../src/modules/models/runtime/test-backend.js'
import { buildTestApp, createTestUser, type TestApp, type TestUser, unique } from './helpers.js'
import { irisClassifierSpec, registerVersion, shippedCard } from './models.js'

/** The test backend's graph behind the iris card: deterministic, and no ONNX worker. */
export const IRIS_GRAPH = 'serving-iris-like'

export interface ServedIris {
  t: TestApp
  backend: TestBackend
  admin: TestUser
  user: TestUser
  /** The model's name: unique, so files sharing the services-mode database never meet. */
  name: string
  card: ModelCard
}

/**
 * An app serving the shipped iris card (reference distribution included) on the test
 * backend's linear classifier, with an admin and a user.
 */
export async function serveIrisLike(
  env: Record<string, string> = {},
  {
    latencyMs,
    spec = irisClassifierSpec(),
    name = `iris-${unique().toLowerCase()}`,
  }: {
    latencyMs?: number
    spec?: TestModelSpec
    /** Set it when the environment must name the model (PREDICTION_LOG_SAMPLING, ...). */
    name?: string
  } = {},
): Promise<ServedIris> {
  const backend = createTestBackend({ models: { [IRIS_GRAPH]: spec }, latencyMs })
  // A database of its own: an active model left in the shared services-mode database would be
  // loaded by every later app there, whose backend cannot load it, and turn its /ready red.
  const t = await buildTestApp(env, { inference: backend, privateDatabase: true })
  const admin = await createTestUser(t, 'admin')
  const user = await createTestUser(t, 'user')
  const card = { ...shippedCard('iris'), name }
  await registerVersion(t, admin, card, testModelBytes(IRIS_GRAPH))
  return { t, backend, admin, user, name, card }
}

/** Iris measurements; `shift` moves every one by that many cm. */
export function irisInputs(index: number, shift = 0) {
  const base = [
    [5.1, 3.5, 1.4, 0.2],
    [6.4, 3.2, 4.5, 1.5],
    [6.3, 3.3, 6.0, 2.5],
    [5.0, 3.0, 1.6, 0.2],
    [5.9, 2.8, 4.1, 1.3],
  ][index % 5] as number[]
  const [sepal_length, sepal_width, petal_length, petal_width] = base.map((value) =>
    Math.min(10, Math.round((value + shift) * 10) / 10),
  )
  return { sepal_length, sepal_width, petal_length, petal_width }
}
