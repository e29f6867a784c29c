import { describe, expect, it } from 'vitest'
import { ValidationFailed } from '../shared/errors.js'
import { MoneySchema, StringEnum } from '../shared/schemas.js'
import { assertValid, childPath } from './validation.js'

function pathsOf(schema: object, value: unknown, part?: string): string[] {
  try {
    assertValid(schema, value, part)
  } catch (error) {
    if (error instanceof ValidationFailed) return error.errors.map((problem) => problem.path)
    throw error
  }
  throw new Error('expected the value to be refused')
}

describe('childPath', () => {
  it('when the key is an index, then appends it in brackets', () => {
    expect(childPath('body.items', 1)).toBe('body.items[1]')
  })

  it('when the key is a plain name, then appends it after a dot', () => {
    expect(childPath('body.items[1]', 'quantity')).toBe('body.items[1].quantity')
    expect(childPath('body', '_id2')).toBe('body._id2')
    expect(childPath('headers', 'idempotency-key')).toBe('headers.idempotency-key')
  })

  it.each([
    ['a.b', 'body.inputs["a.b"]'],
    ['a/b', 'body.inputs["a/b"]'],
    ['a b', 'body.inputs["a b"]'],
    ['$ref', 'body.inputs["$ref"]'],
    ['-x', 'body.inputs["-x"]'],
    ['1st', 'body.inputs["1st"]'],
    ['a[0]', 'body.inputs["a[0]"]'],
    ['say "hi"', 'body.inputs["say \\"hi\\""]'],
    ['0', 'body.inputs["0"]'],
    ['', 'body.inputs[""]'],
  ])('when the key is %j, then quotes it in brackets', (key, path) => {
    expect(childPath('body.inputs', key)).toBe(path)
  })
})

describe('field error paths', () => {
  const inputs = {
    type: 'object',
    properties: {
      inputs: {
        type: 'object',
        properties: { sepal_length: { type: 'number' } },
        required: ['sepal_length', 'petal width'],
        additionalProperties: false,
      },
      items: {
        type: 'array',
        items: {
          type: 'object',
          properties: { quantity: { type: 'integer' } },
          additionalProperties: { type: 'number' },
        },
      },
    },
  }

  it('names nested places with dots and indexes in brackets', () => {
    expect(pathsOf(inputs, { items: [{ quantity: 1 }, { quantity: 'x' }] }, 'body')).toEqual([
      'body.items[1].quantity',
    ])
  })

  it('names a missing or refused key that is not an identifier in quoted brackets', () => {
    expect(pathsOf(inputs, { inputs: { sepal_length: 1, 'a.b': 2, 'a/b~c': 3 } })).toEqual([
      'input.inputs["petal width"]',
      'input.inputs["a.b"]',
      'input.inputs["a/b~c"]',
    ])
  })

  it('unescapes a JSON pointer segment before quoting it', () => {
    expect(pathsOf(inputs, { items: [{ 'a/b': 'x', 'c~d': 'y', e: 'z' }] }, 'body')).toEqual([
      'body.items[0]["a/b"]',
      'body.items[0]["c~d"]',
      'body.items[0].e',
    ])
  })

  it('names a header by its hyphenated name, as clients send it', () => {
    const headers = {
      type: 'object',
      properties: { 'idempotency-key': { type: 'string', minLength: 1 } },
    }
    expect(pathsOf(headers, { 'idempotency-key': '' }, 'headers')).toEqual([
      'headers.idempotency-key',
    ])
  })

  it('when the part is the query string, then names it query', () => {
    const query = { type: 'object', properties: { page: { type: 'integer' } } }
    expect(pathsOf(query, { page: 'two' }, 'querystring')).toEqual(['query.page'])
  })
})

describe('field error messages', () => {
  function messagesOf(schema: object, value: unknown): string[] {
    try {
      assertValid(schema, value, 'body')
    } catch (error) {
      if (error instanceof ValidationFailed) return error.errors.map((problem) => problem.message)
      throw error
    }
    throw new Error('expected the value to be refused')
  }

  const order = {
    type: 'object',
    properties: { price: MoneySchema, status: StringEnum(['pending', 'shipped'] as const) },
  }

  it('when a number is sent where a money string is expected, then the message says what is expected with an example', () => {
    expect(messagesOf(order, { price: 19.99 })).toEqual([
      'must be a decimal string with at most 2 decimals, e.g. "19.99"',
    ])
  })

  it('when a number is sent where one of a few strings is expected, then the message lists them once', () => {
    expect(messagesOf(order, { status: 1 })).toEqual(['must be one of: pending, shipped'])
  })

  it('when a string holds a NUL, a lone surrogate or a name holds one, then each is named', () => {
    expect(pathsOf({ type: 'object' }, { a: 'x\u0000', b: ['\ud800'], 'c\u0000': 1 })).toEqual(
      expect.arrayContaining(['input.a', 'input.b[0]', 'input["c\\u0000"]']),
    )
  })

  it('when a number is infinite, then it is refused even where any value is allowed', () => {
    expect(pathsOf({ type: 'object' }, { a: [Number.POSITIVE_INFINITY] })).toEqual(['input.a[0]'])
  })

  it('when a body is nested far deeper than any schema, then it is checked without overflowing the stack', () => {
    let deep: unknown = 'x\u0000'
    for (let level = 0; level < 100_000; level += 1) deep = [deep]
    expect(pathsOf({ type: 'array' }, deep)).toHaveLength(1)
  })
})
