/**
 * The two learners the shipped models need, in plain TypeScript so training runs wherever
 * the API does. Both are deterministic: fixed iteration counts, fixed summation order.
 */

type Matrix = number[][]

/** Rounds to a float32, the precision the ONNX graph stores its constants in. */
export const f32 = (value: number) => Math.fround(value)

/** Rounds to 7 significant digits: readable in the card, and exact enough for float32. */
export const tidy = (value: number) => Number(value.toPrecision(7))

export function columnMeans(rows: Matrix): number[] {
  const width = rows[0]?.length ?? 0
  const sums = new Array<number>(width).fill(0)
  for (const row of rows) for (let j = 0; j < width; j++) sums[j] = (sums[j] ?? 0) + (row[j] ?? 0)
  return sums.map((sum) => sum / rows.length)
}

/** Population standard deviation; a constant column gets 1 so dividing by it is harmless. */
export function columnScales(rows: Matrix, means: readonly number[]): number[] {
  return means.map((mean, j) => {
    const variance = rows.reduce((sum, row) => sum + ((row[j] ?? 0) - mean) ** 2, 0) / rows.length
    return variance > 0 ? Math.sqrt(variance) : 1
  })
}

export function softmax(logits: readonly number[]): number[] {
  const top = Math.max(...logits)
  const exps = logits.map((logit) => Math.exp(logit - top))
  const total = exps.reduce((sum, value) => sum + value, 0)
  return exps.map((value) => value / total)
}

export interface LinearModel {
  /** weights[feature][output], as the graph's MatMul takes them. */
  weights: Matrix
  bias: number[]
}

export function linearOutputs(model: LinearModel, row: readonly number[]): number[] {
  return model.bias.map((bias, k) =>
    row.reduce((sum, value, j) => sum + value * (model.weights[j]?.[k] ?? 0), bias),
  )
}

/**
 * Multinomial logistic regression by full-batch gradient descent on the mean
 * cross-entropy plus an L2 penalty on the weights (not the bias).
 */
export function fitSoftmaxRegression(
  rows: Matrix,
  labels: readonly number[],
  options: { classes: number; learningRate: number; epochs: number; l2: number },
): LinearModel {
  const width = rows[0]?.length ?? 0
  const { classes, learningRate, epochs, l2 } = options
  const model: LinearModel = {
    weights: Array.from({ length: width }, () => new Array<number>(classes).fill(0)),
    bias: new Array<number>(classes).fill(0),
  }
  for (let epoch = 0; epoch < epochs; epoch++) {
    const gradW = Array.from({ length: width }, () => new Array<number>(classes).fill(0))
    const gradB = new Array<number>(classes).fill(0)
    rows.forEach((row, i) => {
      const probabilities = softmax(linearOutputs(model, row))
      for (let k = 0; k < classes; k++) {
        const error = (probabilities[k] ?? 0) - (labels[i] === k ? 1 : 0)
        gradB[k] = (gradB[k] ?? 0) + error
        for (let j = 0; j < width; j++) {
          const gradRow = gradW[j] as number[]
          gradRow[k] = (gradRow[k] ?? 0) + error * (row[j] ?? 0)
        }
      }
    })
    for (let j = 0; j < width; j++) {
      const weightRow = model.weights[j] as number[]
      for (let k = 0; k < classes; k++) {
        const gradient = (gradW[j]?.[k] ?? 0) / rows.length + l2 * (weightRow[k] ?? 0)
        weightRow[k] = (weightRow[k] ?? 0) - learningRate * gradient
      }
    }
    for (let k = 0; k < classes; k++) {
      model.bias[k] = (model.bias[k] ?? 0) - (learningRate * (gradB[k] ?? 0)) / rows.length
    }
  }
  return model
}

/**
 * Ridge regression in closed form: (XᵀX + λI) w = Xᵀy with an unpenalised intercept,
 * solved by Cholesky since the penalised matrix is symmetric positive definite.
 */
export function fitRidgeRegression(
  rows: Matrix,
  targets: readonly number[],
  lambda: number,
): LinearModel {
  const width = (rows[0]?.length ?? 0) + 1
  const gram = Array.from({ length: width }, () => new Array<number>(width).fill(0))
  const moment = new Array<number>(width).fill(0)
  rows.forEach((features, i) => {
    const row = [1, ...features]
    for (let a = 0; a < width; a++) {
      moment[a] = (moment[a] ?? 0) + (row[a] ?? 0) * (targets[i] ?? 0)
      const gramRow = gram[a] as number[]
      for (let b = 0; b <= a; b++) gramRow[b] = (gramRow[b] ?? 0) + (row[a] ?? 0) * (row[b] ?? 0)
    }
  })
  for (let a = 1; a < width; a++) (gram[a] as number[])[a] = (gram[a]?.[a] ?? 0) + lambda
  const solution = solveCholesky(gram, moment)
  return {
    weights: solution.slice(1).map((weight) => [weight]),
    bias: [solution[0] ?? 0],
  }
}

/** Solves A x = b for a symmetric positive definite A given by its lower triangle. */
function solveCholesky(lower: Matrix, b: readonly number[]): number[] {
  const n = b.length
  const l = Array.from({ length: n }, () => new Array<number>(n).fill(0))
  const at = (m: Matrix, i: number, j: number) => m[i]?.[j] ?? 0
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = at(lower, i, j)
      for (let k = 0; k < j; k++) sum -= at(l, i, k) * at(l, j, k)
      if (i === j) {
        if (sum <= 0) throw new Error('the ridge system is not positive definite')
        ;(l[i] as number[])[i] = Math.sqrt(sum)
      } else {
        ;(l[i] as number[])[j] = sum / at(l, j, j)
      }
    }
  }
  const y = new Array<number>(n).fill(0)
  for (let i = 0; i < n; i++) {
    let sum = b[i] ?? 0
    for (let k = 0; k < i; k++) sum -= at(l, i, k) * (y[k] ?? 0)
    y[i] = sum / at(l, i, i)
  }
  const x = new Array<number>(n).fill(0)
  for (let i = n - 1; i >= 0; i--) {
    let sum = y[i] ?? 0
    for (let k = i + 1; k < n; k++) sum -= at(l, k, i) * (x[k] ?? 0)
    x[i] = sum / at(l, i, i)
  }
  return x
}
