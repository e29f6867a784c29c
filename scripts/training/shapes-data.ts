import type { Random } from './random.js'

/**
 * Procedurally drawn images for the shapes classifier: one filled shape of a random size,
 * position, rotation and colour on a background of another colour, with a soft gradient and
 * per-pixel noise, so that the classifier has to learn outlines rather than colours or places.
 */

export const SHAPES = ['circle', 'square', 'triangle', 'cross'] as const
export type Shape = (typeof SHAPES)[number]

/** Side of every drawn image, in pixels; the card's width and height. */
export const SIDE = 32
export const CHANNELS = 3
/** Samples per pixel along each axis: edges are anti-aliased, as in a photo or a rendering. */
const SUPERSAMPLE = 3
/** Standard deviation of the per-channel noise, in 0-255 units. */
const NOISE = 8

export interface DrawnImage {
  shape: number
  /** SIDE x SIDE x 3 bytes, RGB, row by row: what decoding a PNG of it gives. */
  pixels: Uint8Array
}

type Colour = [number, number, number]

const colour = (random: Random): Colour => [random.int(256), random.int(256), random.int(256)]

/** Background and foreground far enough apart that the shape can be told from its ground. */
function contrastingColours(random: Random): [Colour, Colour] {
  for (;;) {
    const background = colour(random)
    const foreground = colour(random)
    const distance = Math.hypot(
      background[0] - foreground[0],
      background[1] - foreground[1],
      background[2] - foreground[2],
    )
    if (distance >= 120) return [background, foreground]
  }
}

/** Whether the point (u, v), in the shape's own frame (radius 1, unrotated), is inside it. */
function inside(shape: Shape, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1
    case 'square':
      return Math.abs(u) <= 0.8 && Math.abs(v) <= 0.8
    case 'triangle': {
      // Equilateral, inscribed in the unit circle, apex up (v grows downwards).
      const h = Math.sqrt(3) / 2
      if (v > 0.5) return false
      return Math.abs(u) <= (v + 1) * (h / 1.5)
    }
    case 'cross':
      return (Math.abs(u) <= 1 && Math.abs(v) <= 0.3) || (Math.abs(v) <= 1 && Math.abs(u) <= 0.3)
  }
}

/** Draws one image of class `shape` (an index into SHAPES). */
export function drawShape(random: Random, shape: number): DrawnImage {
  const kind = SHAPES[shape] as Shape
  const [background, foreground] = contrastingColours(random)
  const radius = 5 + random.next() * 9
  const margin = radius * 0.8
  const cx = margin + random.next() * (SIDE - 2 * margin)
  const cy = margin + random.next() * (SIDE - 2 * margin)
  const angle = random.next() * 2 * Math.PI
  const cos = Math.cos(angle)
  const sin = Math.sin(angle)
  // A gentle lighting gradient across the picture, in a random direction.
  const gradient = (random.next() - 0.5) * 60
  const gx = Math.cos(angle * 1.7)
  const gy = Math.sin(angle * 1.7)

  const pixels = new Uint8Array(SIDE * SIDE * CHANNELS)
  const step = 1 / SUPERSAMPLE
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      let covered = 0
      for (let sy = 0; sy < SUPERSAMPLE; sy++) {
        for (let sx = 0; sx < SUPERSAMPLE; sx++) {
          const dx = (x + (sx + 0.5) * step - cx) / radius
          const dy = (y + (sy + 0.5) * step - cy) / radius
          if (inside(kind, dx * cos + dy * sin, -dx * sin + dy * cos)) covered++
        }
      }
      const alpha = covered / (SUPERSAMPLE * SUPERSAMPLE)
      const light = gradient * (((x - SIDE / 2) * gx + (y - SIDE / 2) * gy) / SIDE)
      for (let c = 0; c < CHANNELS; c++) {
        const value =
          (foreground[c] as number) * alpha +
          (background[c] as number) * (1 - alpha) +
          light +
          random.normal() * NOISE
        pixels[(y * SIDE + x) * CHANNELS + c] = Math.min(255, Math.max(0, Math.round(value)))
      }
    }
  }
  return { shape, pixels }
}

/** `count` images, the classes in turn, so every class is equally represented. */
export function drawShapes(random: Random, count: number): DrawnImage[] {
  return Array.from({ length: count }, (_, i) => drawShape(random, i % SHAPES.length))
}
