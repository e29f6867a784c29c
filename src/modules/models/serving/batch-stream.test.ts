import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { injectAs } from '../../../../test/helpers.js'
import { irisClassifierSpec } from '../../../../test/models.js'
import { irisInputs, type ServedIris, serveIrisLike } from '../../../../test/serving.js'

const NDJSON = 'application/x-ndjson'
const lines = (body: string) =>
  body
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))

/** A sepal length no real iris has: the graph below fails on it, as a broken model would. */
const POISON = 9.9

describe('streamed batch predictions (NDJSON)', () => {
  let s: ServedIris
  const post = (instances: unknown[], accept = NDJSON, name = s.name) =>
    injectAs(
      s.t,
      s.user,
    )({
      method: 'POST',
      url: `/v1/models/${name}/predict/batch`,
      headers: { accept },
      payload: { instances },
    })

  beforeAll(async () => {
    const spec = irisClassifierSpec()
    s = await serveIrisLike(
      {
        // Four rows per inference call: ten instances stream in three chunks.
        INFERENCE_MAX_BATCH_SIZE: '4',
        PREDICT_BATCH_MAX: '5',
        PREDICT_STREAM_BATCH_MAX: '20',
      },
      {
        spec: {
          ...spec,
          predictRow: (row) => {
            const first = (row.float_input as { data: ArrayLike<number> }).data[0] as number
            if (Math.abs(first - POISON) < 1e-4) throw new Error('poisoned row')
            return spec.predictRow(row)
          },
        },
      },
    )
  }, 120_000)
  afterAll(() => s?.t.close())

  it('when Accept asks for NDJSON, then every instance gets one line, in order, with the answer the JSON batch gives', async () => {
    const instances = Array.from({ length: 10 }, (_, i) => irisInputs(i))
    instances[6] = { ...irisInputs(6), petal_width: -1 }
    const response = await post(instances)
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toContain(NDJSON)
    const streamed = lines(response.body)
    expect(streamed.map((line) => line.index)).toEqual([...instances.keys()])
    expect(streamed[6]).toEqual({
      index: 6,
      errors: [{ path: 'body.instances[6].petal_width', message: 'must be at least 0 (cm)' }],
    })
    const json = (await post(instances.slice(0, 5), 'application/json')).json()
    streamed.slice(0, 5).forEach((line, i) => {
      expect(line).toEqual({ index: i, model: s.name, version: '1.0.0', ...json.predictions[i] })
    })
  })

  it('when every instance of a chunk is invalid, then each gets its error line and the stream goes on', async () => {
    const bad = { sepal_length: 'long' }
    const instances = [bad, bad, bad, bad, irisInputs(1)]
    const streamed = lines((await post(instances)).body)
    expect(streamed).toHaveLength(5)
    expect(streamed[3]).toEqual({
      index: 3,
      errors: expect.arrayContaining([
        { path: 'body.instances[3].sepal_length', message: 'must be a number' },
      ]),
    })
    expect(streamed[4]).toMatchObject({ index: 4, model: s.name })
  })

  it('when the batch is above PREDICT_BATCH_MAX but within PREDICT_STREAM_BATCH_MAX, then only the stream takes it', async () => {
    const instances = Array.from({ length: 12 }, (_, i) => irisInputs(i))
    expect((await post(instances, 'application/json')).statusCode).toBe(422)
    expect(lines((await post(instances)).body)).toHaveLength(12)
    const tooMany = await post(Array.from({ length: 21 }, (_, i) => irisInputs(i)))
    expect(tooMany.statusCode).toBe(422)
    expect(tooMany.json().errors[0].path).toBe('body.instances')
  })

  it('when the model does not exist, then the answer is a 404 problem, not a stream', async () => {
    const response = await post([irisInputs(0)], NDJSON, 'no-such-model')
    expect(response.statusCode).toBe(404)
    expect(response.json()).toMatchObject({ code: 'MODEL_NOT_FOUND' })
  })

  it('when inference fails in the middle, then the lines before stand and a last line carries the 500 problem', async () => {
    const instances = Array.from({ length: 10 }, (_, i) => irisInputs(i))
    instances[5] = { ...irisInputs(5), sepal_length: POISON }
    const streamed = lines((await post(instances)).body)
    expect(streamed.slice(0, 4).every((line) => typeof line.prediction === 'string')).toBe(true)
    expect(streamed).toHaveLength(5)
    expect(streamed[4]).toEqual({
      index: 4,
      problem: expect.objectContaining({ status: 500, code: 'INFERENCE_FAILED' }),
    })
  })

  it('when a later chunk is still running, then the lines of the earlier one have already reached the client', async () => {
    await s.t.app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = s.t.app.server.address() as AddressInfo
    const runsBefore = s.backend.runs.length
    // The first chunk's inference waits for the first gate; every inference that starts
    // after the second gate is set waits for that one.
    const releaseFirst = s.backend.hold()
    let releaseRest = () => {}
    const received: string[] = []
    const linesSoFar = () => received.join('').split('\n').filter(Boolean).length
    const finished = new Promise<void>((resolve, reject) => {
      const request = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/v1/models/${s.name}/predict/batch`,
          headers: { ...s.user.headers, 'content-type': 'application/json', accept: NDJSON },
        },
        (response) => {
          response.setEncoding('utf8')
          response.on('data', (chunk: string) => received.push(chunk))
          response.on('end', resolve)
          response.on('error', reject)
        },
      )
      request.on('error', reject)
      request.end(
        JSON.stringify({ instances: Array.from({ length: 10 }, (_, i) => irisInputs(i)) }),
      )
    })
    try {
      await until(() => s.backend.runs.length > runsBefore)
      releaseRest = s.backend.hold()
      releaseFirst()
      await until(() => linesSoFar() >= 4)
      await until(() => s.backend.runs.length > runsBefore + 1)
      // The second chunk is held: the client has the first four lines and nothing of it.
      expect(linesSoFar()).toBe(4)
      expect(lines(received.join('')).map((line) => line.index)).toEqual([0, 1, 2, 3])
    } finally {
      releaseFirst()
      releaseRest()
    }
    await finished
    expect(lines(received.join('')).map((line) => line.index)).toEqual([...Array(10).keys()])
  })
})

/** Resolves once `done` holds, polling; fails the test after ten seconds. */
async function until(done: () => boolean) {
  const deadline = Date.now() + 10_000
  while (!done()) {
    if (Date.now() > deadline) throw new Error('the condition never held')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
