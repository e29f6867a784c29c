/**
 * The most the iris graph can give on one thread with no HTTP in front of it: ONNX Runtime
 * in this process, one session with one intra-op thread as the server configures its own
 * (INFERENCE_INTRA_OP_THREADS=1), runs back to back. The predict suite reports its HTTP
 * throughput as a fraction of these figures.
 */
import * as ort from 'onnxruntime-node'

export interface CeilingSettings {
  /** The ONNX file of the model. */
  modelPath: string
  /** Input rows the runs rotate over, each as wide as the model's input. */
  rows: readonly (readonly number[])[]
  /** Rows of one batched run: as many as the server's batcher can gather into one. */
  batchRows: number
  /** Measured time of each loop, after a short warm-up. */
  seconds: number
}

export interface CeilingResult {
  name: string
  rowsPerRun: number
  runs: number
  rowsPerSecond: number
  /** Median and 99th percentile of one run, to 0.001 ms. */
  p50Ms: number
  p99Ms: number
}

const WARMUP_SECONDS = 0.5

/** As the server opens a model with INFERENCE_INTRA_OP_THREADS=1; the HTTP ceiling shares it. */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
}

export async function measureOnnxCeiling(settings: CeilingSettings): Promise<CeilingResult[]> {
  const session = await ort.InferenceSession.create(settings.modelPath, SESSION_OPTIONS)
  try {
    const input = session.inputNames[0]
    if (input === undefined) throw new Error(`${settings.modelPath} declares no input`)
    const width = settings.rows[0]?.length ?? 0
    // Every start offset of the pool, so consecutive runs see different rows as a server does.
    const batches = (size: number) =>
      settings.rows.map((_, start) => {
        const data = new Float32Array(size * width)
        for (let i = 0; i < size; i++) {
          data.set(settings.rows[(start + i) % settings.rows.length] ?? [], i * width)
        }
        return data
      })
    const loops = [
      { name: 'ONNX Runtime, 1 row a run', size: 1 },
      { name: `ONNX Runtime, ${settings.batchRows} rows a run`, size: settings.batchRows },
    ]
    const results: CeilingResult[] = []
    for (const { name, size } of loops) {
      const data = batches(size)
      const run = (index: number) =>
        session.run({
          [input]: new ort.Tensor('float32', data[index % data.length] ?? [], [size, width]),
        })
      await runFor(WARMUP_SECONDS, run)
      const { timesMs, seconds } = await runFor(settings.seconds, run)
      timesMs.sort((a, b) => a - b)
      results.push({
        name,
        rowsPerRun: size,
        runs: timesMs.length,
        rowsPerSecond: (timesMs.length * size) / seconds,
        p50Ms: percentile(timesMs, 0.5),
        p99Ms: percentile(timesMs, 0.99),
      })
    }
    return results
  } finally {
    await session.release()
  }
}

/** Runs back to back until `seconds` have passed: the time of each run and of them all. */
async function runFor(seconds: number, run: (index: number) => Promise<unknown>) {
  const timesMs: number[] = []
  const startedAt = performance.now()
  const deadline = startedAt + seconds * 1000
  for (let index = 0; performance.now() < deadline; index++) {
    const runStartedAt = performance.now()
    await run(index)
    timesMs.push(performance.now() - runStartedAt)
  }
  return { timesMs, seconds: (performance.now() - startedAt) / 1000 }
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0
  const value = sorted[Math.max(0, Math.ceil(fraction * sorted.length) - 1)] ?? 0
  return Math.round(value * 1000) / 1000
}
