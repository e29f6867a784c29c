import { ValidationFailed } from '../../../shared/errors.js'
import type { PredictionBody, PredictionService, PredictOptions } from './prediction-service.js'
import { problemLine } from './problem-line.js'

export interface StreamedBatchOptions extends PredictOptions {
  /** Instances per inference call: a line per instance is written as its chunk finishes. */
  chunkRows: number
}

/** One NDJSON line: an instance's prediction, or its problems, by index. */
export type StreamedLine =
  | ({ index: number; model: string; version: string } & PredictionBody)
  | { index: number; errors: { path: string; message: string }[] }
  | { index: number; problem: Record<string, unknown> }

/**
 * The lines of a streamed batch prediction, in instance order. Instances run in chunks so
 * the first lines leave while later chunks are still queued, and the memory held is one
 * chunk's, not the whole answer's. Every chunk runs on the version the first one resolved, so
 * an activation in the middle of a stream never mixes versions in one answer.
 */
export async function* streamBatchPredictions(
  predictions: Pick<PredictionService, 'predictBatch'>,
  name: string,
  instances: unknown[],
  { version, chunkRows, ...options }: StreamedBatchOptions,
): AsyncGenerator<string> {
  let pinned = version
  for (let start = 0; start < instances.length; start += chunkRows) {
    const chunk = instances.slice(start, start + chunkRows)
    let answer: Awaited<ReturnType<PredictionService['predictBatch']>>
    try {
      answer = await predictions.predictBatch(name, chunk, { ...options, version: pinned }, start)
    } catch (error) {
      if (error instanceof ValidationFailed) {
        yield* errorLines(error.errors, start, chunk.length)
        continue
      }
      // The status line has left: the failure becomes the last line, and the stream ends.
      yield `${JSON.stringify({ index: start, problem: problemLine(error) })}\n`
      return
    }
    pinned = answer.version
    const problems = groupByIndex(answer.errors, start)
    let lines = ''
    answer.predictions.forEach((prediction, offset) => {
      const index = start + offset
      const line: StreamedLine = prediction
        ? { index, model: answer.model, version: answer.version, ...prediction }
        : { index, errors: problems.get(index) ?? [] }
      lines += `${JSON.stringify(line)}\n`
    })
    yield lines
  }
}

function* errorLines(
  errors: { path: string; message: string }[],
  start: number,
  count: number,
): Generator<string> {
  const problems = groupByIndex(errors, start)
  let lines = ''
  for (let index = start; index < start + count; index++) {
    lines += `${JSON.stringify({ index, errors: problems.get(index) ?? [] })}\n`
  }
  yield lines
}

/** Problems by instance index, read from their paths (`body.instances[12].sepal_length`). */
function groupByIndex(errors: { path: string; message: string }[], start: number) {
  const byIndex = new Map<number, { path: string; message: string }[]>()
  for (const error of errors) {
    const match = /^body\.instances\[(\d+)\]/.exec(error.path)
    const index = match ? Number(match[1]) : start
    const list = byIndex.get(index) ?? []
    list.push(error)
    byIndex.set(index, list)
  }
  return byIndex
}
