import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, createTestUser, type TestApp } from '../../../../test/helpers.js'

interface Operation {
  operationId: string
  summary: string
  description: string
  parameters?: { in: string; name: string }[]
  responses: Record<string, unknown>
  requestBody: { content: { 'application/json': { schema: unknown; example: unknown } } }
}
interface Document {
  paths: Record<string, { post?: Operation }>
  components: { schemas: Record<string, Record<string, unknown>> }
}

describe('the OpenAPI document of served models', () => {
  let t: TestApp
  let document: Document

  beforeAll(async () => {
    // The shipped models, loaded by ONNX Runtime, as a first start serves them.
    t = await buildTestApp({ MODELS_REGISTER_SHIPPED: 'true' }, { privateDatabase: true })
    document = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json()
  })
  afterAll(() => t.close())

  it("documents each served model's inputs as a schema generated from its card", () => {
    const iris = document.components.schemas['PredictInputs.iris']
    expect(iris).toMatchObject({
      type: 'object',
      required: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'],
      additionalProperties: false,
    })
    expect((iris?.properties as Record<string, unknown> | undefined)?.petal_width).toMatchObject({
      type: 'number',
      minimum: 0,
      maximum: 10,
    })
    const carPrice = document.components.schemas['PredictInputs.car-price']
    const fuel = (carPrice?.properties as Record<string, { enum?: unknown[] }> | undefined)
      ?.fuel_type
    expect(fuel?.enum).toEqual(expect.arrayContaining(['petrol', 'diesel']))
  })

  it('gives each served model its own predict and batch operations pointing at its card', () => {
    for (const name of ['iris', 'car-price']) {
      const single = document.paths[`/v1/models/${name}/predict`]?.post
      const batch = document.paths[`/v1/models/${name}/predict/batch`]?.post
      expect(single?.requestBody.content['application/json'].schema).toMatchObject({
        properties: { inputs: { $ref: `#/components/schemas/PredictInputs.${name}` } },
      })
      expect(batch?.requestBody.content['application/json'].schema).toMatchObject({
        properties: {
          instances: { items: { $ref: `#/components/schemas/PredictInputs.${name}` } },
        },
      })
      expect(single?.description).toContain(`GET /v1/models/${name}`)
      // The model is in the path: no `name` parameter is left to fill.
      expect(single?.parameters?.some((parameter) => parameter.name === 'name')).toBe(false)
    }
    // The generic operation stays for models registered after the document was made.
    expect(document.paths['/v1/models/{name}/predict']?.post).toBeDefined()
  })

  it('gives an image model no JSON predict operations, and documents the picture routes as multipart', () => {
    expect(document.paths['/v1/models/shapes/predict']).toBeUndefined()
    expect(document.paths['/v1/models/shapes/predict/batch']).toBeUndefined()
    for (const path of ['/v1/models/{name}/predict/image', '/v1/classify-image']) {
      const operation = document.paths[path]?.post
      expect(operation?.requestBody?.content).toHaveProperty(['multipart/form-data'])
      expect(Object.keys(operation?.responses ?? {})).toEqual(
        expect.arrayContaining(['200', '409', '413', '415', '422', '429']),
      )
    }
  })

  it("gives an example request that the model's own endpoint accepts", async () => {
    const user = await createTestUser(t, 'viewer')
    for (const name of ['iris', 'car-price']) {
      const operation = document.paths[`/v1/models/${name}/predict`]?.post
      const response = await t.app.inject({
        method: 'POST',
        url: `/v1/models/${name}/predict`,
        headers: user.headers,
        payload: operation?.requestBody.content['application/json'].example as object,
      })
      expect(response.statusCode, response.body).toBe(200)
    }
  })

  it('when a prediction or KServe route refuses a request, then the status it answers is one its operation documents', async () => {
    const user = await createTestUser(t, 'viewer')
    const routes = [
      ['/v1/models/iris/predict', '/v1/models/{name}/predict'],
      ['/v1/models/car-price/predict/batch', '/v1/models/{name}/predict/batch'],
      ['/v1/predict', '/v1/predict'],
      ['/v2/models/iris/infer', '/v2/models/{name}/infer'],
      ['/v2/models/iris/versions/1.0.0/infer', '/v2/models/{name}/versions/{version}/infer'],
      ['/v1/models/shapes/predict', '/v1/models/{name}/predict'],
      ['/v1/models/shapes/predict/image', '/v1/models/{name}/predict/image'],
      ['/v1/classify-image', '/v1/classify-image'],
    ]
    const requests = [
      { headers: { 'content-type': 'application/json' }, payload: '{"inputs": ' }, // 400
      { headers: { 'content-type': 'text/plain' }, payload: 'inputs' }, // 415
      { headers: { 'content-type': 'application/json' }, payload: '{}' }, // 422
    ]
    for (const [url, documented] of routes) {
      const operation = document.paths[documented as string]?.post
      for (const request of requests) {
        const response = await t.app.inject({
          method: 'POST',
          url: url as string,
          headers: { ...user.headers, ...request.headers },
          payload: request.payload,
        })
        expect(response.statusCode).toBeGreaterThanOrEqual(400)
        expect(
          Object.keys(operation?.responses ?? {}),
          `${url} answered ${response.statusCode}`,
        ).toContain(String(response.statusCode))
      }
    }
  })

  it('serves the same extended document to Swagger UI', async () => {
    const ui: Document = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json()
    expect(ui.paths['/v1/models/iris/predict']?.post?.operationId).toBe('predict_iris')
    expect(ui.components.schemas['PredictInputs.iris']).toBeDefined()
  })
})
