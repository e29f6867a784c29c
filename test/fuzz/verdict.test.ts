import { describe, expect, it } from 'vitest'
import type { Operation, Schema } from './operations.js'
import { encodeJson, RawJson } from './values.js'
import { type Answer, createVerdict } from './verdict.js'

const PROBLEM: Schema = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail', 'instance'],
  properties: { status: { type: 'integer' } },
}
const operation: Operation = {
  id: 'GET /v1/things/{id}',
  method: 'GET',
  path: '/v1/things/{id}',
  parameters: [],
  responses: new Map<number, Schema>([
    [
      200,
      { type: 'object', required: ['id'], properties: { id: { type: 'string', format: 'uuid' } } },
    ],
    [400, { type: 'object', required: ['error'], properties: { error: { type: 'string' } } }],
    [404, PROBLEM],
  ]),
  secured: true,
}
const judge = createVerdict({})
const json = (statusCode: number, body: unknown, type = 'application/json'): Answer => ({
  statusCode,
  headers: { 'content-type': type },
  body: JSON.stringify(body),
})
const problem = (status: number, extra: object = {}) =>
  json(
    status,
    { type: 'urn:x', title: 'T', status, detail: 'd', instance: '/v1/things/1', ...extra },
    'application/problem+json',
  )
const kinds = (answer: Answer) => judge(operation, answer).map((v) => v.kind)

describe('fuzz verdict', () => {
  it('when an answer keeps the document, then it breaks no rule', () => {
    expect(kinds(json(200, { id: '3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10' }))).toEqual([])
    expect(kinds(problem(404))).toEqual([])
  })

  it('when the service answers 500, then it counts as a 5xx and not as an undocumented status', () => {
    expect(kinds(problem(500))).toEqual(['5xx'])
  })

  it('when a status is not in the operation’s responses, then it is an undocumented status', () => {
    expect(kinds(problem(414))).toEqual(['undocumented status'])
  })

  it('when an error is plain JSON where the document promises a problem, then it is not problem+json', () => {
    expect(kinds(json(404, { error: 'Not Found', statusCode: 404 }))).toEqual(['not problem+json'])
    expect(kinds(problem(404, { status: 400 }))).toEqual(['not problem+json'])
  })

  it('when the operation documents another error format (RFC 6749), then an error in it is accepted and one outside it is not', () => {
    expect(kinds(json(400, { error: 'invalid_grant' }))).toEqual([])
    expect(kinds(problem(400))).toEqual(['schema violation'])
  })

  it('when a 2xx body misses a required member or breaks a format, then it is a schema violation', () => {
    expect(kinds(json(200, {}))).toEqual(['schema violation'])
    expect(kinds(json(200, { id: 'not-a-uuid' }))).toEqual(['schema violation'])
  })

  it('when a body carries a query or a stack trace, then it leaks', () => {
    const sql = problem(404, { detail: 'Failed query: select "id" from "things" where "id" = $1' })
    const stack = problem(404, {
      detail: 'Error: boom\n    at handler (/srv/app/src/routes.ts:12:7)',
    })
    expect(kinds(sql)).toContain('leaks SQL or a stack')
    expect(kinds(stack)).toContain('leaks SQL or a stack')
  })
})

describe('fuzz JSON encoding', () => {
  it('when a value holds raw JSON, then its text is sent verbatim, numbers JSON cannot write included', () => {
    expect(encodeJson({ page: new RawJson('1e400'), q: 'a', n: [new RawJson('-0')] })).toBe(
      '{"page":1e400,"q":"a","n":[-0]}',
    )
  })
})
