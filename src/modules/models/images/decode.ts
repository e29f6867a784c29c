import type { Sharp, SharpOptions } from 'sharp'
import type { ImageInput } from '../card.js'
import { type TensorData, tensor } from '../runtime/backend.js'
import { ImageTooManyPixels, ImageUnreadable, UnsupportedImageType } from './errors.js'

type SharpFactory = (input: Buffer, options: SharpOptions) => Sharp
let loadingSharp: Promise<SharpFactory> | undefined

/** sharp and libvips cost ~20 MB resident: loaded on the first picture, not at start. */
function loadSharp(): Promise<SharpFactory> {
  loadingSharp ??= import('sharp').then(({ default: sharp }) => {
    // Each upload is decoded once: libvips' operation cache would only hold on to memory.
    sharp.cache(false)
    return sharp
  })
  return loadingSharp
}

export type ImageFormat = 'jpeg' | 'png' | 'webp'

export const IMAGE_MEDIA_TYPES: Record<ImageFormat, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
}

const startsWith = (bytes: Uint8Array, prefix: readonly number[], at = 0) =>
  bytes.length >= at + prefix.length && prefix.every((byte, i) => bytes[at + i] === byte)

const ascii = (text: string) => Array.from(text, (char) => char.charCodeAt(0))

/**
 * The format by the file's own first bytes. The declared media type and file name are the
 * client's word and are ignored: libvips would also decode SVG, PDF, TIFF, HEIF and more,
 * and each decoder is attack surface this service does not need.
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg'
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png'
  if (startsWith(bytes, ascii('RIFF')) && startsWith(bytes, ascii('WEBP'), 8)) return 'webp'
  return undefined
}

export interface ImageLimits {
  /** Pixels the header may declare (width x height); beyond, refused without decoding. */
  maxPixels: number
}

/** What was uploaded, as its header says: recorded in the prediction log. */
export interface ImageInfo {
  format: ImageFormat
  width: number
  height: number
  bytes: number
}

export interface PreparedImage {
  info: ImageInfo
  /** One picture, as the card's input takes it: [1, C, H, W] or [1, H, W, C] float32. */
  tensor: TensorData
}

const unreadable = (format: ImageFormat) =>
  new ImageUnreadable(
    `The file starts as a ${format.toUpperCase()} image but does not decode: it is truncated or corrupt.`,
  )

/**
 * Checks the header, then decodes, converts, resizes and normalises the picture as the card
 * says. The pixel count is read from the header first, so a decompression bomb (a small
 * file that declares a huge picture) is refused before any pixel is decoded; sharp's
 * limitInputPixels holds the same bound inside the decoder should a header lie.
 */
export async function prepareImage(
  bytes: Buffer,
  image: ImageInput,
  limits: ImageLimits,
): Promise<PreparedImage> {
  const format = sniffImageFormat(bytes)
  if (!format) {
    throw new UnsupportedImageType(
      'The file is not a JPEG, PNG or WebP image (judged by its content, not its name or declared type).',
      { accepted: Object.values(IMAGE_MEDIA_TYPES) },
    )
  }
  const sharp = await loadSharp()
  const options = { limitInputPixels: limits.maxPixels, failOn: 'truncated' } as const
  let width: number
  let height: number
  try {
    // Parses the header only; no pixel is decoded here.
    const metadata = await sharp(bytes, { ...options, limitInputPixels: false }).metadata()
    width = metadata.width
    height = metadata.height
  } catch {
    throw unreadable(format)
  }
  if (width * height > limits.maxPixels) {
    throw new ImageTooManyPixels(
      `The image declares ${width} x ${height} pixels; at most ${limits.maxPixels} are decoded.`,
      { width, height, max_pixels: limits.maxPixels },
    )
  }
  const info: ImageInfo = { format, width, height, bytes: bytes.length }
  let pixels: Buffer
  try {
    const pipeline = sharp(bytes, options)
      // Phone cameras store the picture sideways and say so in EXIF; the model sees it upright.
      .autoOrient()
      .removeAlpha()
      .toColourspace(image.channels === 3 ? 'srgb' : 'b-w')
      .resize(image.width, image.height, { fit: image.resize, background: '#000000' })
    pixels = (await pipeline.raw().toBuffer({ resolveWithObject: true })).data
  } catch {
    throw unreadable(format)
  }
  return { info, tensor: normalise(pixels, image) }
}

/** `(pixel * rescale - mean[c]) / std[c]`, channels in the card's order, in its layout. */
function normalise(pixels: Uint8Array, image: ImageInput): TensorData {
  const { width, height, channels, layout, rescale, mean, std } = image
  const area = width * height
  const data = new Float32Array(area * channels)
  // Decoded channels are RGB; BGR reads them back to front.
  const source =
    channels === 3 && image.color_order === 'BGR' ? [2, 1, 0] : [0, 1, 2].slice(0, channels)
  for (let c = 0; c < channels; c++) {
    const from = source[c] as number
    const m = mean[c] as number
    const s = std[c] as number
    for (let i = 0; i < area; i++) {
      const value = ((pixels[i * channels + from] as number) * rescale - m) / s
      data[layout === 'NCHW' ? c * area + i : i * channels + c] = value
    }
  }
  const dims = layout === 'NCHW' ? [1, channels, height, width] : [1, height, width, channels]
  return tensor('float32', dims, data)
}
