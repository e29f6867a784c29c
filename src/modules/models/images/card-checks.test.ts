import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../../test/helpers.js'
import { MODELS_DIR, modelUpload } from '../../../../test/models.js'
import type { ModelCard } from '../card.js'
import { cardInconsistencies } from '../card-consistency.js'
import { signatureMismatches } from '../signature.js'

const card = JSON.parse(readFileSync(new URL('shapes.card.json', MODELS_DIR), 'utf8')) as ModelCard
const onnx = new Uint8Array(readFileSync(new URL('shapes.onnx', MODELS_DIR)))
const image = card.image as NonNullable<ModelCard['image']>

/** The shapes graph's signature, as ONNX Runtime reports it. */
const signature = {
  inputs: [{ name: 'image', type: 'float32' as const, shape: ['N', 3, 32, 32] }],
  outputs: [
    { name: 'probabilities', type: 'float32' as const, shape: ['N', 4] },
    { name: 'label', type: 'int64' as const, shape: ['N'] },
  ],
}

const withImage = (changes: Partial<typeof image>): ModelCard => ({
  ...card,
  image: { ...image, ...changes },
})

describe('image cards', () => {
  it('when the shipped shapes card is checked against its graph, then nothing is wrong', () => {
    expect(signatureMismatches(card, signature)).toEqual([])
  })

  it('when mean or std lack a channel or std holds 0, then each is named', () => {
    expect(cardInconsistencies(withImage({ mean: [0.5, 0.5], std: [0.2, 0, 0.2] }))).toEqual([
      { path: 'card.image.mean', message: 'has 2 entries for 3 channels: one per channel' },
      { path: 'card.image.std[1]', message: 'is 0: every value would divide by it' },
    ])
  })

  it('when an image card also declares named inputs, tensors or another task, then it is refused', () => {
    const problems = cardInconsistencies({
      ...card,
      task: 'regression',
      inputs: [{ name: 'x', type: 'number', description: 'x', required: true }],
      preprocessing: {
        tensors: [{ name: 'x', dtype: 'float32', shape: ['N', 1], columns: ['x'], missing: 'NaN' }],
        steps: [],
      },
    })
    expect(problems.map((problem) => problem.path)).toEqual([
      'card.task',
      'card.inputs',
      'card.preprocessing',
    ])
  })

  it('when no float32 output has labels, then top-k has no names and the card is refused', () => {
    const problems = cardInconsistencies({
      ...card,
      outputs: card.outputs.map(({ labels: _labels, ...output }) => output),
    })
    expect(problems).toEqual([
      {
        path: 'card.outputs',
        message: 'must include a float32 output with labels: the probabilities of each class',
      },
    ])
  })

  it('when the layout, size or channels disagree with the graph, then the card names the shape', () => {
    for (const changes of [{ layout: 'NHWC' as const }, { width: 64 }, { channels: 1 as const }]) {
      const problems = signatureMismatches(
        withImage({
          ...changes,
          mean: image.mean.slice(0, changes.channels ?? 3),
          std: image.std.slice(0, changes.channels ?? 3),
        }),
        signature,
      )
      expect(problems, JSON.stringify(changes)).toHaveLength(1)
      expect(problems[0]).toMatchObject({ path: 'card.image' })
      expect(problems[0]?.message).toContain(
        "the graph's input is 'image' (float32 [N, 3, 32, 32])",
      )
    }
  })

  it('when the card names an input the graph lacks, or the graph wants another, then both are named', () => {
    expect(signatureMismatches(withImage({ input: 'pixels' }), signature)).toEqual([
      {
        path: 'card.image.input',
        message: "the graph has no input 'pixels'; its inputs: 'image' (float32 [N, 3, 32, 32])",
      },
      {
        path: 'card.image.input',
        message:
          "is the only input an image model feeds, but the graph also takes 'image' (float32 [N, 3, 32, 32])",
      },
    ])
  })
})

describe('registering an image model', () => {
  let t: TestApp
  let admin: TestUser
  beforeAll(async () => {
    t = await buildTestApp()
    admin = await createTestUser(t, 'admin')
  }, 120_000)
  afterAll(() => t?.close())

  const register = async (body: ModelCard) =>
    injectAs(
      t,
      admin,
    )({ method: 'POST', url: '/v1/models', ...(await modelUpload({ card: body, onnx })) })

  it('when the card fits the graph, then 201 and the card keeps its image section', async () => {
    const name = `shapes-${unique().toLowerCase()}`
    const response = await register({ ...card, name })
    expect(response.statusCode, response.body).toBe(201)
    const model = await injectAs(t, admin)({ method: 'GET', url: `/v1/models/${name}` })
    expect(JSON.stringify(model.json())).toContain('"layout":"NCHW"')
  })

  it('when the card says NHWC for an NCHW graph, then 422 MODEL_SIGNATURE_MISMATCH and nothing is stored', async () => {
    const name = `shapes-${unique().toLowerCase()}`
    const response = await register({ ...withImage({ layout: 'NHWC' }), name })
    expect(response.statusCode, response.body).toBe(422)
    expect(response.json()).toMatchObject({ code: 'MODEL_SIGNATURE_MISMATCH' })
    expect(response.json().errors[0]).toMatchObject({ path: 'card.image' })
    const model = await injectAs(t, admin)({ method: 'GET', url: `/v1/models/${name}` })
    expect(model.statusCode).toBe(404)
  })

  it('when the image section breaks its schema, then 422 naming the field', async () => {
    const response = await register({
      ...card,
      name: `shapes-${unique().toLowerCase()}`,
      image: { ...image, resize: 'squash' } as unknown as ModelCard['image'],
    })
    expect(response.statusCode, response.body).toBe(422)
    expect(JSON.stringify(response.json().errors)).toContain('card.image.resize')
  })
})
