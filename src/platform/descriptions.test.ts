import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, type TestApp } from '../../test/helpers.js'

let t: TestApp
let document: { info: { description: string }; paths: Record<string, unknown> }

beforeAll(async () => {
  t = await buildTestApp()
  document = (await t.app.inject({ url: '/openapi.json' })).json()
})
afterAll(() => t.close())

const packageDescription: string = JSON.parse(readFileSync('package.json', 'utf8')).description

/** Domains the design plans; each is advertised only once its routes are served. */
const PLANNED = [
  { name: 'datasets', words: /\bdatasets?\b/i, path: '/v1/datasets' },
  { name: 'jobs', words: /\bjobs?\b/i, path: '/v1/jobs' },
]

describe('what the service says it does', () => {
  it.each(PLANNED)(
    'when the package or API description names $name, then the API serves them',
    ({ words, path }) => {
      const served = Object.keys(document.paths).some((route) => route.startsWith(path))
      for (const description of [packageDescription, document.info.description]) {
        if (words.test(description)) expect(served, description).toBe(true)
      }
    },
  )

  it('when the API serves models and orders, then both descriptions say so', () => {
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/v1/orders', '/v1/models', '/v1/predict']),
    )
    for (const description of [packageDescription, document.info.description]) {
      expect(description).toMatch(/order management/i)
      expect(description).toMatch(/model serving/i)
    }
  })
})
