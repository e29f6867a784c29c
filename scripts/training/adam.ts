/**
 * Adam (Kingma and Ba) over one flat parameter array: a closure holds its two moment
 * estimates. `step` counts from 1, for the bias correction.
 */
export function createAdam(size: number) {
  const m = new Float64Array(size)
  const v = new Float64Array(size)
  return (params: Float64Array, grads: Float64Array, step: number, rate: number) => {
    const b1 = 0.9
    const b2 = 0.999
    const c1 = 1 - b1 ** step
    const c2 = 1 - b2 ** step
    for (let i = 0; i < size; i++) {
      const g = grads[i] as number
      m[i] = b1 * (m[i] as number) + (1 - b1) * g
      v[i] = b2 * (v[i] as number) + (1 - b2) * g * g
      params[i] =
        (params[i] as number) -
        (rate * ((m[i] as number) / c1)) / (Math.sqrt((v[i] as number) / c2) + 1e-8)
    }
  }
}
