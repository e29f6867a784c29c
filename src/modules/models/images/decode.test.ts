import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import type { ImageInput } from '../card.js'
import { prepareImage } from './decode.js'
import { ImageTooManyPixels, ImageUnreadable, UnsupportedImageType } from './errors.js'

const LIMITS = { maxPixels: 1_000_000 }

/** A card's picture spec that feeds raw 0-255 values: every test changes what it checks. */
const spec = (changes: Partial<ImageInput> = {}): ImageInput => ({
  input: 'image',
  width: 2,
  height: 1,
  channels: 3,
  color_order: 'RGB',
  resize: 'fill',
  layout: 'NCHW',
  rescale: 1,
  mean: [0, 0, 0],
  std: [1, 1, 1],
  scores: 'probabilities',
  ...changes,
})

/** A lossless PNG of `pixels` (RGB triples, row by row). */
function png(width: number, height: number, pixels: number[][]) {
  return sharp(Buffer.from(pixels.flat()), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer()
}

const LEFT = [10, 20, 30]
const RIGHT = [200, 100, 50]

describe('preparing a picture as its card says', () => {
  it('when the layout is NCHW, then each channel is a plane; when NHWC, then each pixel holds its channels', async () => {
    const picture = await png(2, 1, [LEFT, RIGHT])
    const planes = await prepareImage(picture, spec(), LIMITS)
    expect(planes.tensor.dims).toEqual([1, 3, 1, 2])
    expect(Array.from(planes.tensor.data as Float32Array)).toEqual([10, 200, 20, 100, 30, 50])
    const pixels = await prepareImage(picture, spec({ layout: 'NHWC' }), LIMITS)
    expect(pixels.tensor.dims).toEqual([1, 1, 2, 3])
    expect(Array.from(pixels.tensor.data as Float32Array)).toEqual([10, 20, 30, 200, 100, 50])
    expect(planes.info).toEqual({ format: 'png', width: 2, height: 1, bytes: picture.length })
  })

  it('when the colour order is BGR, then the channels come blue first', async () => {
    const picture = await png(2, 1, [LEFT, RIGHT])
    const { tensor } = await prepareImage(picture, spec({ color_order: 'BGR' }), LIMITS)
    expect(Array.from(tensor.data as Float32Array)).toEqual([30, 50, 20, 100, 10, 200])
  })

  it('when rescale, mean and std are set, then each value is (pixel * rescale - mean[c]) / std[c] with its own channel', async () => {
    const picture = await png(2, 1, [LEFT, RIGHT])
    const image = spec({ rescale: 1 / 255, mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 0.125] })
    const { tensor } = await prepareImage(picture, image, LIMITS)
    const expected = [LEFT, RIGHT]
      .flatMap((pixel, p) => pixel.map((value, c) => ({ c, p, value })))
      .sort((a, b) => a.c - b.c || a.p - b.p)
      .map(({ c, value }) => (value / 255 - (image.mean[c] as number)) / (image.std[c] as number))
    Array.from(tensor.data as Float32Array).forEach((value, i) => {
      expect(value).toBeCloseTo(expected[i] as number, 5)
    })
  })

  it('when the card takes one channel, then a grey picture feeds its grey level once per pixel', async () => {
    const picture = await png(2, 1, [
      [40, 40, 40],
      [180, 180, 180],
    ])
    const image = spec({ channels: 1, mean: [0], std: [1] })
    const { tensor } = await prepareImage(picture, image, LIMITS)
    expect(tensor.dims).toEqual([1, 1, 1, 2])
    const [dark, light] = Array.from(tensor.data as Float32Array)
    expect(dark).toBeCloseTo(40, 0)
    expect(light).toBeCloseTo(180, 0)
  })

  it('when the picture is larger than the card size, then it is resized to it', async () => {
    const side = 16
    const picture = await png(
      side,
      side,
      Array.from({ length: side * side }, () => RIGHT),
    )
    const { tensor, info } = await prepareImage(picture, spec({ width: 4, height: 3 }), LIMITS)
    expect(info).toMatchObject({ width: side, height: side })
    expect(tensor.dims).toEqual([1, 3, 3, 4])
    const red = Array.from(tensor.data as Float32Array).slice(0, 12)
    for (const value of red) expect(value).toBeCloseTo(200, 0)
  })

  it('when the EXIF orientation says the picture is turned, then the model sees it upright', async () => {
    // Stored as one row, left then right; orientation 6 says: turn it 90 degrees clockwise.
    const turned = await sharp(await png(2, 1, [LEFT, RIGHT]))
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
      .toBuffer()
    const { tensor } = await prepareImage(
      turned,
      spec({ width: 1, height: 2, layout: 'NHWC' }),
      LIMITS,
    )
    const [top, bottom] = [0, 1].map((row) =>
      Array.from(tensor.data as Float32Array).slice(row * 3, row * 3 + 3),
    )
    // JPEG is lossy: each pixel is nearer its own colour than the other's.
    const distance = (a: number[], b: number[]) =>
      a.reduce((sum, v, i) => sum + Math.abs(v - (b[i] as number)), 0)
    expect(distance(top as number[], LEFT)).toBeLessThan(distance(top as number[], RIGHT))
    expect(distance(bottom as number[], RIGHT)).toBeLessThan(distance(bottom as number[], LEFT))
  })

  it('when the content is no picture, is cut short or declares too many pixels, then each is its own refusal', async () => {
    const picture = await png(2, 1, [LEFT, RIGHT])
    await expect(prepareImage(Buffer.from('GIF89a....'), spec(), LIMITS)).rejects.toBeInstanceOf(
      UnsupportedImageType,
    )
    await expect(
      prepareImage(picture.subarray(0, picture.length - 20), spec(), LIMITS),
    ).rejects.toBeInstanceOf(ImageUnreadable)
    await expect(prepareImage(picture, spec(), { maxPixels: 1 })).rejects.toBeInstanceOf(
      ImageTooManyPixels,
    )
  })
})
