import { readFileSync } from 'node:fs'
import { deflateSync } from 'node:zlib'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GoldenFile } from '../../../../scripts/training/artifacts.js'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../../test/helpers.js'
import { eventually } from '../../../../test/jobs.js'
import { formBody, MODELS_DIR, registerVersion } from '../../../../test/models.js'
import type { ModelCard } from '../card.js'

const readJson = <T>(file: string): T => JSON.parse(readFileSync(new URL(file, MODELS_DIR), 'utf8'))
const card = readJson<ModelCard>('shapes.card.json')
const golden = readJson<GoldenFile>('shapes.golden.json')
const shippedImageBytes = () => new Uint8Array(readFileSync(new URL('shapes.onnx', MODELS_DIR)))
const labels = card.outputs.find((output) => output.name === 'probabilities')?.labels ?? []

/** A golden case's picture, encoded as `format` (PNG and lossless WebP keep every pixel). */
async function goldenPicture(index: number, format: 'png' | 'webp' | 'jpeg' = 'png') {
  const { input } = golden.cases[index] as GoldenFile['cases'][number]
  const raw = Buffer.from(input.rgb_base64 as string, 'base64')
  const picture = sharp(raw, {
    raw: { width: input.width as number, height: input.height as number, channels: 3 },
  })
  if (format === 'webp') return picture.webp({ lossless: true }).toBuffer()
  if (format === 'jpeg')
    return picture.jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer()
  return picture.png().toBuffer()
}

interface PartOptions {
  filename?: string
  type?: string
  part?: string
}

/** The multipart body of an image upload: `bytes` as the `image` part, named and typed as given. */
function upload(
  bytes: Uint8Array,
  { filename = 'picture.png', type = 'image/png', part = 'image' }: PartOptions = {},
) {
  const form = new FormData()
  form.append(part, new Blob([bytes], { type }), filename)
  return formBody(form)
}

/**
 * A PNG whose header declares `width` x `height` pixels but whose data holds one row's worth
 * of zeros: readable as a header, undecodable as a picture.
 */
function pngDeclaring(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4)
    length.writeUInt32BE(data.length, 0)
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type), data])), 0)
    return Buffer.concat([length, Buffer.from(type), data, crc])
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header.set([8, 2, 0, 0, 0], 8) // 8-bit RGB, deflate, no filter, no interlace
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return Buffer.concat([
    signature,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.alloc(1 + width * 3))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff
  for (const byte of bytes) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1
  }
  return (crc ^ 0xffffffff) >>> 0
}

const SVG = Buffer.from(
  '<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><circle cx="16" cy="16" r="8"/></svg>',
)

let t: TestApp
let viewer: TestUser
let admin: TestUser

beforeAll(async () => {
  // The real ONNX Runtime and the shipped shapes model; a low pixel and byte limit so that
  // the limits are tested with small files.
  t = await buildTestApp(
    {
      MODELS_REGISTER_SHIPPED: 'true',
      IMAGE_MAX_PIXELS: '1000000',
      IMAGE_MAX_BYTES: '200000',
      PREDICTION_LOG_FLUSH_INTERVAL_MS: '20',
    },
    { privateDatabase: true },
  )
  viewer = await createTestUser(t, 'viewer')
  admin = await createTestUser(t, 'admin')
}, 120_000)
afterAll(() => t?.close())

const predictImage = async (
  bytes: Uint8Array,
  url = `/v1/models/shapes/predict/image?version=${golden.version}`,
  part: PartOptions = {},
) => injectAs(t, viewer)({ method: 'POST', url, ...(await upload(bytes, part)) })

interface Answer {
  model: string
  version: string
  prediction: string
  probability: number
  top_k: { label: string; probability: number }[]
  image: { format: string; width: number; height: number }
}

describe('the shipped shapes model through POST /v1/models/{name}/predict/image', () => {
  it.each(golden.cases.map((_, index) => index))(
    'when golden picture %i is sent as PNG, then it answers the golden probabilities',
    async (index) => {
      const response = await predictImage(await goldenPicture(index))
      expect(response.statusCode, response.body).toBe(200)
      const body = response.json() as Answer
      const { output } = golden.cases[index] as GoldenFile['cases'][number]
      const expected = output.probabilities as number[]
      expect(body).toMatchObject({
        model: 'shapes',
        version: golden.version,
        prediction: labels[output.label as number],
        image: { format: 'png', width: 32, height: 32 },
      })
      expect(body.top_k).toHaveLength(labels.length)
      for (const { label, probability } of body.top_k) {
        const want = expected[labels.indexOf(label)] as number
        expect(Math.abs(probability - want), label).toBeLessThanOrEqual(golden.tolerance)
      }
      const ranked = body.top_k.map((entry) => entry.probability)
      expect(ranked).toEqual([...ranked].sort((a, b) => b - a))
      expect(body.probability).toBe(body.top_k[0]?.probability)
    },
  )

  it('when the same picture comes as lossless WebP or as JPEG, then the label is the same', async () => {
    const png = (await (await predictImage(await goldenPicture(0))).json()) as Answer
    for (const format of ['webp', 'jpeg'] as const) {
      const response = await predictImage(await goldenPicture(0, format), undefined, {
        filename: `p.${format}`,
        type: `image/${format}`,
      })
      expect(response.statusCode, response.body).toBe(200)
      expect(response.json()).toMatchObject({ prediction: png.prediction, image: { format } })
    }
  })

  it('when a larger picture is sent, then it is resized to the card size first', async () => {
    const big = await sharp(await goldenPicture(1))
      .resize(256, 256, { kernel: 'nearest' })
      .png()
      .toBuffer()
    const response = await predictImage(big)
    expect(response.statusCode, response.body).toBe(200)
    const { output } = golden.cases[1] as GoldenFile['cases'][number]
    expect(response.json()).toMatchObject({
      prediction: labels[output.label as number],
      image: { width: 256, height: 256 },
    })
  })

  it('when the card says its output holds logits, then the answer is their softmax', async () => {
    // The shapes graph answers probabilities; read as logits, they must come back softmaxed.
    const name = `shapes-logits-${unique().toLowerCase()}`
    const logitsCard = { ...card, name, image: { ...card.image, scores: 'logits' } }
    await registerVersion(t, admin, logitsCard as ModelCard, shippedImageBytes())
    const response = await predictImage(await goldenPicture(5), `/v1/models/${name}/predict/image`)
    expect(response.statusCode, response.body).toBe(200)
    const scores = (golden.cases[5] as GoldenFile['cases'][number]).output.probabilities as number[]
    const exps = scores.map(Math.exp)
    const total = exps.reduce((a, b) => a + b, 0)
    for (const { label, probability } of (response.json() as Answer).top_k) {
      const want = (exps[labels.indexOf(label)] as number) / total
      expect(Math.abs(probability - want), label).toBeLessThanOrEqual(golden.tolerance)
    }
  })

  it('when top_k=2 is asked, then the two most probable labels answer', async () => {
    const response = await predictImage(
      await goldenPicture(2),
      '/v1/models/shapes/predict/image?top_k=2',
    )
    expect(response.statusCode, response.body).toBe(200)
    const body = response.json() as Answer
    expect(body.top_k).toHaveLength(2)
    expect(body.top_k[0]?.label).toBe(body.prediction)
  })
})

describe('POST /v1/classify-image', () => {
  it('when a picture is sent, then the default image model answers as its own route does', async () => {
    const picture = await goldenPicture(3)
    const shortcut = await predictImage(picture, '/v1/classify-image?top_k=3')
    const direct = await predictImage(picture, '/v1/models/shapes/predict/image?top_k=3')
    expect(shortcut.statusCode, shortcut.body).toBe(200)
    const { latency_ms: _a, ...viaShortcut } = shortcut.json()
    const { latency_ms: _b, ...viaModel } = direct.json()
    expect(viaShortcut).toEqual(viaModel)
    expect(viaShortcut.model).toBe('shapes')
  })

  it('when the picture comes in a part named file, as the seed sends it, then it is read too', async () => {
    const response = await predictImage(await goldenPicture(0), '/v1/classify-image', {
      part: 'file',
    })
    expect(response.statusCode, response.body).toBe(200)
  })
})

describe('pictures that are refused', () => {
  it('when the file is truncated, then 422 IMAGE_UNREADABLE', async () => {
    for (const format of ['png', 'jpeg'] as const) {
      const whole = await goldenPicture(0, format)
      const response = await predictImage(whole.subarray(0, Math.floor(whole.length / 2)))
      expect(response.statusCode, `${format}: ${response.body}`).toBe(422)
      expect(response.json()).toMatchObject({ code: 'IMAGE_UNREADABLE' })
    }
  })

  it('when the magic bytes are not JPEG, PNG or WebP, then 415 whatever the name and declared type', async () => {
    const png = await goldenPicture(0)
    const damaged = Buffer.from(png)
    damaged[1] = 0x51
    const gif = await sharp(png).gif().toBuffer()
    for (const bytes of [damaged, gif, Buffer.from('just some text, not a picture')]) {
      const response = await predictImage(bytes, undefined, { filename: 'picture.png' })
      expect(response.statusCode, response.body).toBe(415)
      expect(response.json()).toMatchObject({
        code: 'UNSUPPORTED_IMAGE_TYPE',
        accepted: ['image/jpeg', 'image/png', 'image/webp'],
      })
    }
  })

  it('when an SVG is sent, even named and typed as a PNG, then 415', async () => {
    for (const [filename, type] of [
      ['a.svg', 'image/svg+xml'],
      ['a.png', 'image/png'],
    ] as const) {
      const response = await predictImage(SVG, undefined, { filename, type })
      expect(response.statusCode, response.body).toBe(415)
      expect(response.json().code).toBe('UNSUPPORTED_IMAGE_TYPE')
    }
  })

  it('when the header declares more pixels than IMAGE_MAX_PIXELS, then 413 before any pixel is decoded', async () => {
    // The file holds one row of the 30,000 it declares: decoding it would fail as
    // IMAGE_UNREADABLE, so this answer can only come from the header check.
    const bomb = pngDeclaring(30_000, 30_000)
    expect(bomb.length).toBeLessThan(1000)
    const response = await predictImage(bomb)
    expect(response.statusCode, response.body).toBe(413)
    expect(response.json()).toMatchObject({
      code: 'IMAGE_TOO_MANY_PIXELS',
      width: 30_000,
      height: 30_000,
      max_pixels: 1_000_000,
    })
    // A real, small file of a few pixels more than the limit: refused the same way.
    const wide = await sharp({
      create: { width: 1001, height: 1000, channels: 3, background: '#102030' },
    })
      .png()
      .toBuffer()
    const refused = await predictImage(wide)
    expect(refused.statusCode).toBe(413)
    expect(refused.json().code).toBe('IMAGE_TOO_MANY_PIXELS')
  })

  it('when the file is larger than IMAGE_MAX_BYTES, then 413 IMAGE_TOO_LARGE', async () => {
    const noise = Buffer.alloc(300 * 300 * 3)
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24
    const big = await sharp(noise, { raw: { width: 300, height: 300, channels: 3 } })
      .png({ compressionLevel: 0 })
      .toBuffer()
    expect(big.length).toBeGreaterThan(200_000)
    const response = await predictImage(big)
    expect(response.statusCode, response.body).toBe(413)
    expect(response.json()).toMatchObject({ code: 'IMAGE_TOO_LARGE', max_bytes: 200_000 })
  })

  it('when no image part is sent, then 422; when the body is not multipart, then 415', async () => {
    const form = new FormData()
    form.append('note', 'no picture here')
    const empty = await injectAs(
      t,
      viewer,
    )({
      method: 'POST',
      url: '/v1/classify-image',
      ...(await formBody(form)),
    })
    expect(empty.statusCode, empty.body).toBe(422)
    expect(empty.json().errors).toEqual([{ path: 'image', message: 'is required' }])
    const json = await injectAs(
      t,
      viewer,
    )({
      method: 'POST',
      url: '/v1/classify-image',
      payload: { image: 'aGVsbG8=' },
    })
    expect(json.statusCode, json.body).toBe(415)
  })

  it('when the multipart body lacks its boundary or is cut short, then 400 MALFORMED_MULTIPART', async () => {
    const asViewer = injectAs(t, viewer)
    const noBoundary = await asViewer({
      method: 'POST',
      url: '/v1/classify-image',
      headers: { 'content-type': 'multipart/form-data' },
      payload: '{"image":"aGVsbG8="}',
    })
    expect(noBoundary.statusCode, noBoundary.body).toBe(400)
    expect(noBoundary.json().code).toBe('MALFORMED_MULTIPART')
    const whole = await upload(await goldenPicture(0))
    const cut = await asViewer({
      method: 'POST',
      url: '/v1/classify-image',
      headers: whole.headers,
      payload: whole.payload.subarray(0, whole.payload.length - 20),
    })
    expect(cut.statusCode, cut.body).toBe(400)
    expect(cut.json().code).toBe('MALFORMED_MULTIPART')
  })

  it('when the model does not read pictures, then 409; and the JSON predict route refuses an image model', async () => {
    const iris = await predictImage(await goldenPicture(0), '/v1/models/iris/predict/image')
    expect(iris.statusCode, iris.body).toBe(409)
    expect(iris.json().code).toBe('MODEL_TASK_MISMATCH')
    const json = await injectAs(
      t,
      viewer,
    )({
      method: 'POST',
      url: '/v1/models/shapes/predict',
      payload: { inputs: {} },
    })
    expect(json.statusCode, json.body).toBe(409)
    expect(json.json().code).toBe('MODEL_TASK_MISMATCH')
    const missing = await predictImage(
      await goldenPicture(0),
      '/v1/models/no-such-model/predict/image',
    )
    expect(missing.statusCode).toBe(404)
  })

  it('when top_k is out of range, then 422', async () => {
    const response = await predictImage(await goldenPicture(0), '/v1/classify-image?top_k=0')
    expect(response.statusCode, response.body).toBe(422)
  })
})

describe('image predictions are observed as every prediction is', () => {
  const counter = async (outcome: string) => {
    const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('predictions_total{') &&
          l.includes('model="shapes"') &&
          l.includes(`outcome="${outcome}"`),
      )
    return line ? Number(line.split(' ').at(-1)) : 0
  }

  it('when pictures are predicted or refused, then predictions_total counts them by outcome', async () => {
    const [ok, invalid] = [await counter('ok'), await counter('invalid')]
    await predictImage(await goldenPicture(0))
    await predictImage(Buffer.from((await goldenPicture(0)).subarray(0, 40)))
    expect(await counter('ok')).toBe(ok + 1)
    expect(await counter('invalid')).toBe(invalid + 1)
  })

  it('when a picture is predicted, then the prediction log holds its format, size and answer', async () => {
    const answer = await predictImage(await goldenPicture(4))
    const requestId = answer.headers['x-request-id']
    const entry = await eventually(async () =>
      (
        await injectAs(
          t,
          admin,
        )({ method: 'GET', url: '/v1/models/shapes/predictions?page_size=100' })
      )
        .json()
        .items.find((item: { request_id: string }) => item.request_id === requestId),
    )
    expect(entry).toMatchObject({
      model: 'shapes',
      inputs: { image: { format: 'png', width: 32, height: 32 } },
      output: { prediction: answer.json().prediction },
      caller: { user_id: viewer.id },
    })
  })
})

describe('the prediction rate limit covers image predictions', () => {
  let limited: TestApp
  beforeAll(async () => {
    limited = await buildTestApp({ MODELS_REGISTER_SHIPPED: 'true', PREDICT_RATE_LIMIT_MAX: '2' })
  }, 120_000)
  afterAll(() => limited?.close())

  it('when a caller exceeds PREDICT_RATE_LIMIT_MAX, then 429 with Retry-After', async () => {
    const user = await createTestUser(limited, 'user')
    const picture = await goldenPicture(0)
    const statuses: number[] = []
    for (let i = 0; i < 3; i++) {
      const response = await injectAs(
        limited,
        user,
      )({
        method: 'POST',
        url: '/v1/classify-image',
        ...(await upload(picture)),
      })
      statuses.push(response.statusCode)
      if (response.statusCode === 429) expect(response.headers['retry-after']).toBeDefined()
    }
    expect(statuses).toEqual([200, 200, 429])
  })
})
