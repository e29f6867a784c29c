import { mkdtempSync, readdirSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import { parquetReadObjects } from 'hyparquet'
import { ByteWriter, parquetWrite } from 'hyparquet-writer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildTestApp,
  createTestUser,
  injectAs,
  type TestApp,
  type TestUser,
  unique,
} from '../../../test/helpers.js'
import { formBody } from '../../../test/models.js'

let t: TestApp
let dataDir: string
let alice: TestUser
let bob: TestUser
let viewer: TestUser
let asAlice: ReturnType<typeof injectAs>
let asBob: ReturnType<typeof injectAs>
let asViewer: ReturnType<typeof injectAs>

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'datasets-test-'))
  t = await buildTestApp({
    DATA_DIR: dataDir,
    DATASET_INLINE_MAX_BYTES: '300000000',
    DATASET_MAX_LINE_BYTES: '65536',
  })
  ;[alice, bob, viewer] = await Promise.all([
    createTestUser(t, 'user'),
    createTestUser(t, 'user'),
    createTestUser(t, 'viewer'),
  ])
  asAlice = injectAs(t, alice)
  asBob = injectAs(t, bob)
  asViewer = injectAs(t, viewer)
})
afterAll(async () => {
  await t.close()
  await rm(dataDir, { recursive: true, force: true })
})

type Inject = ReturnType<typeof injectAs>
type Fields = Record<string, string>

interface DatasetBody {
  id: string
  name: string
  format: string
  status: string
  row_count: number
  size_bytes: number
  sha256: string
  columns: {
    name: string
    source_name: string
    type: string
    nullable: boolean
    stats?: Record<string, unknown>
  }[]
  import: { skipped_count?: number; skipped_lines?: unknown[]; delimiter?: string }
  error: unknown
}

async function upload(
  content: string | Uint8Array,
  fields: Fields = {},
  as: Inject = asAlice,
  filename = 'data.bin',
) {
  const form = new FormData()
  for (const [key, value] of Object.entries(fields)) form.append(key, value)
  form.append('file', new Blob([content]), filename)
  return as({ method: 'POST', url: '/v1/datasets', ...(await formBody(form)) })
}

async function created(content: string | Uint8Array, fields: Fields = {}, as: Inject = asAlice) {
  const response = await upload(content, fields, as)
  expect(response.statusCode, response.body).toBe(201)
  return response.json() as DatasetBody
}

async function rowsOf(id: string, query = '', as: Inject = asAlice) {
  const response = await as({ url: `/v1/datasets/${id}/rows${query ? `?${query}` : ''}` })
  expect(response.statusCode, response.body).toBe(200)
  return response.json() as {
    items: Record<string, unknown>[]
    total: number
    next_cursor: string | null
  }
}

function spooledFiles(): string[] {
  try {
    return readdirSync(join(dataDir, 'uploads', 'spool'))
  } catch {
    return []
  }
}

const PEOPLE = [
  'name,age,city,score,member,joined,seen_at',
  'Ada,36,Oslo,9.5,true,2020-01-02,2024-05-01T10:00:00Z',
  'Bo,29,Bergen,7,false,2021-03-04,2024-05-02T11:30:00Z',
  'Cy,41,Oslo,,true,2019-07-08,',
  'Di,30,Trondheim,8.25,false,2022-12-31,2024-05-03T00:00:00+02:00',
  'Ed,52,Bergen,6.5,true,2018-06-15,2024-05-04T09:15:00Z',
].join('\n')

describe('uploading a CSV file', () => {
  it('when a CSV is uploaded, then its types, stats, hash and rows are recorded', async () => {
    const dataset = await created(PEOPLE, { name: 'people' })
    expect(dataset).toMatchObject({
      name: 'people',
      format: 'csv',
      status: 'ready',
      row_count: 5,
      size_bytes: Buffer.byteLength(PEOPLE),
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    })
    expect(dataset.columns.map((c) => [c.name, c.type, c.nullable])).toEqual([
      ['name', 'string', false],
      ['age', 'integer', false],
      ['city', 'string', false],
      ['score', 'number', true],
      ['member', 'boolean', false],
      ['joined', 'date', false],
      ['seen_at', 'timestamp', true],
    ])
    const age = dataset.columns.find((c) => c.name === 'age')
    expect(age?.stats).toMatchObject({
      min: 29,
      max: 52,
      mean: 37.6,
      null_count: 0,
      distinct_count: 5,
    })
    const city = dataset.columns.find((c) => c.name === 'city')
    expect(city?.stats).toMatchObject({ distinct_count: 3, min: 'Bergen', max: 'Trondheim' })
    const { items } = await rowsOf(dataset.id, 'page_size=2')
    expect(items).toEqual([
      {
        name: 'Ada',
        age: 36,
        city: 'Oslo',
        score: 9.5,
        member: true,
        joined: '2020-01-02',
        seen_at: '2024-05-01T10:00:00.000Z',
      },
      {
        name: 'Bo',
        age: 29,
        city: 'Bergen',
        score: 7,
        member: false,
        joined: '2021-03-04',
        seen_at: '2024-05-02T11:30:00.000Z',
      },
    ])
    expect(spooledFiles()).toEqual([])
  })

  it('when cells hold quoted delimiters, newlines and quotes, a BOM and CRLF, then they are read whole', async () => {
    const csv = '\uFEFFid;note\r\n1;"a; b"\r\n2;"line one\r\nline two"\r\n3;"say ""hi"""\r\n'
    const dataset = await created(csv)
    expect(dataset.import.delimiter).toBe(';')
    expect(dataset.columns.map((c) => c.name)).toEqual(['id', 'note'])
    const { items } = await rowsOf(dataset.id)
    expect(items.map((r) => r.note)).toEqual(['a; b', 'line one\r\nline two', 'say "hi"'])
  })

  it('when header names repeat, are empty or unfit for SQL, then each gets a unique name and keeps its original', async () => {
    const dataset = await created('a,a,,"Weird ""Name"" ; DROP TABLE x",1st\n1,2,3,4,5\n')
    expect(dataset.columns.map((c) => [c.name, c.source_name])).toEqual([
      ['a', 'a'],
      ['a_2', 'a'],
      ['column_3', ''],
      ['Weird "Name" ; DROP TABLE x', 'Weird "Name" ; DROP TABLE x'],
      ['1st', '1st'],
    ])
    const { items } = await rowsOf(dataset.id, 'sort=-1st')
    expect(items).toEqual([
      { a: 1, a_2: 2, column_3: 3, 'Weird "Name" ; DROP TABLE x': 4, '1st': 5 },
    ])
  })

  it('when a row has more or fewer fields than the header, then the import fails naming the lines and keeps nothing', async () => {
    const before = (await asAlice({ url: '/v1/datasets?page_size=100' })).json().total
    const response = await upload('a,b\n1,2\n3\n4,5,6\n7,8\n')
    expect(response.statusCode).toBe(422)
    expect(response.json()).toMatchObject({
      code: 'DATASET_IMPORT_FAILED',
      bad_line_count: 2,
      bad_lines: [
        { line: 3, column: null, reason: 'has 1 fields; the header has 2' },
        { line: 4, column: null, reason: 'has 3 fields; the header has 2' },
      ],
    })
    expect((await asAlice({ url: '/v1/datasets?page_size=100' })).json().total).toBe(before)
    expect(spooledFiles()).toEqual([])
  })

  it('when on_error=skip, then bad lines are skipped, counted and listed', async () => {
    const dataset = await created('a,b\n1,2\n3\n4,5,6\n7,8\n', { on_error: 'skip' })
    expect(dataset.row_count).toBe(2)
    expect(dataset.import.skipped_count).toBe(2)
    expect(dataset.import.skipped_lines).toHaveLength(2)
    expect((await rowsOf(dataset.id)).items).toEqual([
      { a: 1, b: 2 },
      { a: 7, b: 8 },
    ])
  })

  it('when a value does not fit the declared schema, then the line and column are named', async () => {
    const schema = JSON.stringify([
      { name: 'a', type: 'integer' },
      { name: 'b', type: 'string', nullable: false },
    ])
    const response = await upload('a,b\n1,x\n2.5,y\n3,\n', { schema })
    expect(response.statusCode).toBe(422)
    expect(response.json().bad_lines).toEqual([
      { line: 3, column: 'a', reason: 'is not an integer' },
      { line: 4, column: 'b', reason: 'is required' },
    ])
  })

  it('when a schema is given, then it decides the types', async () => {
    const schema = JSON.stringify([
      { name: 'code', type: 'string' },
      { name: 'n', type: 'number' },
    ])
    const dataset = await created('code,n\n007,1\n010,2\n', { schema })
    expect(dataset.columns.map((c) => c.type)).toEqual(['string', 'number'])
    expect((await rowsOf(dataset.id)).items[0]).toEqual({ code: '007', n: 1 })
  })

  it('when the file is not valid UTF-8 and no encoding is given, then the import fails naming the line', async () => {
    const bytes = Buffer.concat([
      Buffer.from('a,b\n1,ok\n2,'),
      Buffer.from([0xe9, 0x74, 0xe9]),
      Buffer.from('\n'),
    ])
    const response = await upload(bytes)
    expect(response.statusCode).toBe(422)
    expect(response.json().bad_lines[0]).toMatchObject({ line: 3 })
    const latin = await created(bytes, { encoding: 'latin1' })
    expect((await rowsOf(latin.id)).items[1]).toEqual({ a: 2, b: 'été' })
  })

  it('when one line is longer than the line limit, then the import fails on it', async () => {
    const response = await upload(`a,b\n1,${'x'.repeat(100_000)}\n2,y\n`)
    expect(response.statusCode).toBe(422)
    expect(response.json().bad_lines[0]).toMatchObject({
      reason: 'is longer than the line-length limit',
    })
  })

  it('when the header has more columns than allowed, then the import fails', async () => {
    const header = Array.from({ length: 501 }, (_, i) => `c${i}`).join(',')
    const response = await upload(`${header}\n`)
    expect(response.statusCode).toBe(422)
    expect(response.json().bad_lines[0].reason).toBe('has 501 columns; at most 500 are allowed')
  })

  it('when the content is binary, then 415 whatever the file name says', async () => {
    const response = await upload(
      new Uint8Array([0, 1, 2, 3, 255, 254, 0, 0, 7, 8]),
      {},
      asAlice,
      'data.csv',
    )
    expect(response.statusCode).toBe(415)
    expect(response.json().code).toBe('UNSUPPORTED_DATASET_FORMAT')
  })

  it('when the body is JSON rather than multipart, then 415', async () => {
    const response = await asAlice({ method: 'POST', url: '/v1/datasets', payload: { a: 1 } })
    expect(response.statusCode).toBe(415)
  })

  it('when the multipart body ends before its closing boundary, then 400 and nothing is kept', async () => {
    const body = await formBody(
      (() => {
        const form = new FormData()
        form.append('file', new Blob(['a,b\n1,2\n']), 'cut.csv')
        return form
      })(),
    )
    const response = await asAlice({
      method: 'POST',
      url: '/v1/datasets',
      headers: body.headers,
      payload: body.payload.subarray(0, body.payload.length - 20),
    })
    expect(response.statusCode).toBe(400)
    expect(response.json().code).toBe('MALFORMED_MULTIPART')
    expect(spooledFiles()).toEqual([])
  })

  it('when an unknown field is sent, then 422 and nothing is kept', async () => {
    const response = await upload('a\n1\n', { colour: 'red' })
    expect(response.statusCode).toBe(422)
    expect(spooledFiles()).toEqual([])
  })
})

describe('streaming', () => {
  it('when 192 MiB arrive over HTTP, then the process grows by a fraction of the file and the upload is refused by its content', async () => {
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' })
    const boundary = `b${unique()}`
    const line = `${'x'.repeat(1000)}\n`
    const total = 192 * 1024 * 1024
    async function* body() {
      yield new TextEncoder().encode(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\na,b\n`,
      )
      const chunk = new TextEncoder().encode(line.repeat(256))
      for (let sent = 0; sent < total; sent += chunk.length) yield chunk
      yield new TextEncoder().encode(`\r\n--${boundary}--\r\n`)
    }
    const before = process.memoryUsage().rss
    let peak = before
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss)
    }, 20)
    try {
      const response = await fetch(`${address}/v1/datasets`, {
        method: 'POST',
        headers: { ...alice.headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
        body: ReadableStream.from(body()),
        duplex: 'half',
      } as RequestInit)
      // Every line has one field where the header has two: the scan stops at the tenth.
      expect(response.status).toBe(422)
      expect(((await response.json()) as { bad_line_count: number }).bad_line_count).toBe(10)
    } finally {
      clearInterval(timer)
    }
    expect((peak - before) / 1024 / 1024).toBeLessThan(48)
    expect(spooledFiles()).toEqual([])
  })
})

describe('uploading JSON, NDJSON and Parquet', () => {
  it('when a JSON array of objects is uploaded, then keys become columns and missing keys nulls', async () => {
    const dataset = await created(
      JSON.stringify([
        { a: 1, b: 'x' },
        { a: 2.5, c: true },
        { a: null, b: '2024-01-01' },
      ]),
    )
    expect(dataset.format).toBe('json')
    expect(dataset.columns.map((c) => [c.name, c.type, c.nullable])).toEqual([
      ['a', 'number', true],
      ['b', 'string', true],
      ['c', 'boolean', true],
    ])
    expect((await rowsOf(dataset.id)).items[1]).toEqual({ a: 2.5, b: null, c: true })
  })

  it('when a JSON array is cut short, then the import fails and keeps nothing', async () => {
    const response = await upload('[{"a": 1}, {"a": 2')
    expect(response.statusCode).toBe(422)
    expect(response.json().code).toBe('DATASET_IMPORT_FAILED')
  })

  it('when an NDJSON line is not JSON, then its line is named', async () => {
    const response = await upload('{"a":1}\n{"a":2}\nnot json\n{"a":4}\n')
    expect(response.statusCode).toBe(422)
    expect(response.json().bad_lines).toEqual([
      { line: 3, column: null, reason: 'is not valid JSON' },
    ])
    const skipped = await created('{"a":1}\n{"a":2}\nnot json\n[1]\n{"a":4}\n', {
      on_error: 'skip',
    })
    expect(skipped.format).toBe('ndjson')
    expect(skipped.row_count).toBe(3)
    expect(skipped.import.skipped_count).toBe(2)
  })

  it('when a Parquet file is uploaded, then its columns and values arrive typed', async () => {
    const writer = new ByteWriter()
    parquetWrite({
      writer,
      columnData: [
        { name: 'id', data: [1, 2, 3], type: 'INT32' },
        { name: 'label', data: ['x', 'y', null], type: 'STRING' },
        { name: 'weight', data: [1.5, 2.5, 3.5], type: 'DOUBLE' },
      ],
    })
    const dataset = await created(writer.getBytes())
    expect(dataset.format).toBe('parquet')
    expect(dataset.columns.map((c) => [c.name, c.type])).toEqual([
      ['id', 'integer'],
      ['label', 'string'],
      ['weight', 'number'],
    ])
    expect((await rowsOf(dataset.id)).items).toEqual([
      { id: 1, label: 'x', weight: 1.5 },
      { id: 2, label: 'y', weight: 2.5 },
      { id: 3, label: null, weight: 3.5 },
    ])
  })
})

describe('reading rows', () => {
  let id: string
  beforeAll(async () => {
    const lines = ['n,city,even,day']
    const cities = ['Oslo', 'Bergen', 'Tromsø']
    for (let n = 1; n <= 250; n++) {
      lines.push(
        `${n},${cities[n % 3]},${n % 2 === 0},2024-01-${String((n % 28) + 1).padStart(2, '0')}`,
      )
    }
    id = (await created(lines.join('\n'))).id
  })

  it('when filtered by typed operators, then only matching rows count', async () => {
    const page = await rowsOf(
      id,
      'filter[n][gte]=100&filter[n][lt]=110&filter[city][in]=Oslo,Bergen&page_size=100',
    )
    const expected = Array.from({ length: 10 }, (_, i) => 100 + i).filter((n) => n % 3 !== 2)
    expect(page.items.map((r) => r.n)).toEqual(expected)
    expect(page.total).toBe(expected.length)
    const contains = await rowsOf(
      id,
      'filter[city][contains]=roms&filter[even][eq]=true&columns=n&page_size=3',
    )
    expect(contains.items).toEqual([{ n: 2 }, { n: 8 }, { n: 14 }])
  })

  it('when an operator or value does not fit the column type, then 422 names the column', async () => {
    const wrongOperator = await asAlice({ url: `/v1/datasets/${id}/rows?filter[n][contains]=1` })
    expect(wrongOperator.statusCode).toBe(422)
    expect(wrongOperator.json().errors[0]).toMatchObject({ path: 'query.filter[n][contains]' })
    expect(wrongOperator.json().errors[0].message).toContain('column n')
    const wrongValue = await asAlice({ url: `/v1/datasets/${id}/rows?filter[day][gt]=yesterday` })
    expect(wrongValue.statusCode).toBe(422)
    expect(wrongValue.json().errors[0].message).toContain('column day is date')
    const unknown = await asAlice({ url: `/v1/datasets/${id}/rows?sort=nope` })
    expect(unknown.statusCode).toBe(422)
  })

  it('when paged by cursor in a sorted order, then every row comes exactly once and in order', async () => {
    const seen: number[] = []
    let cursor: string | null = null
    do {
      const page = await rowsOf(
        id,
        `sort=-day&page_size=40&columns=n,day${cursor ? `&cursor=${cursor}` : ''}`,
      )
      seen.push(...page.items.map((r) => r.n as number))
      cursor = page.next_cursor
    } while (cursor)
    expect(seen).toHaveLength(250)
    expect(new Set(seen).size).toBe(250)
    const days = seen.map((n) => (n % 28) + 1)
    expect(days).toEqual([...days].sort((a, b) => b - a))
  })

  it('when a cursor is used with another sort, then 422 INVALID_CURSOR', async () => {
    const first = await rowsOf(id, 'sort=n&page_size=10')
    const response = await asAlice({
      url: `/v1/datasets/${id}/rows?sort=day&cursor=${first.next_cursor}`,
    })
    expect(response.statusCode).toBe(422)
    expect(response.json().code).toBe('INVALID_CURSOR')
  })
})

describe('downloading', () => {
  it('when downloaded as CSV, then formula-like cells are neutralised and numbers are kept', async () => {
    const dataset = await created('a,b\n=1+2,-5\n@x,3\n"\tt",4\n')
    const response = await asAlice({ url: `/v1/datasets/${dataset.id}/download?format=csv` })
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toContain('text/csv')
    expect(response.body).toBe("a,b\r\n'=1+2,-5\r\n'@x,3\r\n'\tt,4\r\n")
  })

  it('when downloaded as NDJSON and Parquet, then the rows come back equal', async () => {
    const dataset = await created(PEOPLE)
    const ndjson = await asAlice({ url: `/v1/datasets/${dataset.id}/download?format=ndjson` })
    const lines = ndjson.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    const { items } = await rowsOf(dataset.id)
    expect(lines).toEqual(items)
    const parquet = await asAlice({ url: `/v1/datasets/${dataset.id}/download?format=parquet` })
    expect(parquet.statusCode).toBe(200)
    const bytes = parquet.rawPayload
    const file = new Uint8Array(bytes).buffer
    const read = await parquetReadObjects({ file })
    expect(read.map((r) => r.name)).toEqual(items.map((r) => r.name))
    expect(read.map((r) => Number(r.age))).toEqual(items.map((r) => r.age))
  })
})

describe('ownership', () => {
  it('when another user touches a dataset, then every route answers 404; viewers read but never write', async () => {
    const dataset = await created('a\n1\n')
    const routes = [
      { url: `/v1/datasets/${dataset.id}` },
      { url: `/v1/datasets/${dataset.id}/rows` },
      { url: `/v1/datasets/${dataset.id}/download` },
      { method: 'PATCH' as const, url: `/v1/datasets/${dataset.id}`, payload: { name: 'stolen' } },
      { method: 'DELETE' as const, url: `/v1/datasets/${dataset.id}` },
    ]
    for (const route of routes) {
      const response = await asBob(route)
      expect(response.statusCode, route.url).toBe(404)
    }
    expect(
      (await asBob({ url: '/v1/datasets?page_size=100' }))
        .json()
        .items.map((d: DatasetBody) => d.id),
    ).not.toContain(dataset.id)
    expect((await asViewer({ url: `/v1/datasets/${dataset.id}/rows` })).statusCode).toBe(200)
    expect(
      (await asViewer({ method: 'DELETE', url: `/v1/datasets/${dataset.id}` })).statusCode,
    ).toBe(403)
  })

  it('when the owner renames and deletes a dataset, then its rows go with it', async () => {
    const dataset = await created('a\n1\n')
    const renamed = await asAlice({
      method: 'PATCH',
      url: `/v1/datasets/${dataset.id}`,
      payload: { name: 'renamed', description: 'd' },
    })
    expect(renamed.json()).toMatchObject({ name: 'renamed', description: 'd' })
    expect(
      (await asAlice({ method: 'DELETE', url: `/v1/datasets/${dataset.id}` })).statusCode,
    ).toBe(204)
    expect((await asAlice({ url: `/v1/datasets/${dataset.id}` })).statusCode).toBe(404)
    const table = await t.database.db.execute(
      sql`SELECT to_regclass(${`datasets.rows_${dataset.id.replaceAll('-', '')}`}) AS t`,
    )
    expect((table as unknown as { rows: { t: unknown }[] }).rows[0]?.t).toBeNull()
  })
})

describe('listing and limits', () => {
  it('when datasets are listed with format, status and q, then only the matching own ones come', async () => {
    const tag = unique().toLowerCase()
    await created('a\n1\n', { name: `csv ${tag}` })
    await created('{"a":1}\n', { name: `ndjson ${tag}` })
    const page = await asAlice({ url: `/v1/datasets?q=${tag}&format=ndjson&status=ready` })
    expect(page.statusCode).toBe(200)
    expect(page.json().items.map((d: DatasetBody) => d.name)).toEqual([`ndjson ${tag}`])
    expect((await asBob({ url: `/v1/datasets?q=${tag}` })).json().total).toBe(0)
    expect((await asViewer({ url: `/v1/datasets?q=${tag}` })).json().total).toBe(2)
  })

  it('when a file exceeds DATASET_MAX_BYTES, then 413 and nothing is kept', async () => {
    const small = await buildTestApp(
      { DATA_DIR: dataDir, DATASET_MAX_BYTES: '2048' },
      { database: t.database },
    )
    try {
      const form = new FormData()
      form.append('file', new Blob([`a\n${'1\n'.repeat(2000)}`]), 'big.csv')
      const body = await formBody(form)
      const response = await small.app.inject({
        method: 'POST',
        url: '/v1/datasets',
        headers: { ...alice.headers, ...body.headers },
        payload: body.payload,
      })
      expect(
        response.statusCode,
        JSON.stringify(small.logs.filter((l) => (l.level as number) >= 50)),
      ).toBe(413)
      expect(response.json().code).toBe('DATASET_TOO_LARGE')
      expect(spooledFiles()).toEqual([])
    } finally {
      await small.close()
    }
  })
})

describe('batch upload', () => {
  it('when one file of several is bad, then the others are still imported', async () => {
    const form = new FormData()
    form.append('files', new Blob(['a\n1\n']), 'good.csv')
    form.append('files', new Blob(['a,b\n1\n']), 'ragged.csv')
    form.append('files', new Blob([new Uint8Array([0, 0, 0, 1])]), 'binary.csv')
    const response = await asAlice({
      method: 'POST',
      url: '/v1/datasets/batch',
      ...(await formBody(form)),
    })
    expect(response.statusCode, response.body).toBe(200)
    const items = response.json().items
    expect(items.map((i: { file: string; status: number }) => [i.file, i.status])).toEqual([
      ['good.csv', 201],
      ['ragged.csv', 422],
      ['binary.csv', 415],
    ])
    expect(items[0].dataset.name).toBe('good.csv')
    expect(items[1].error.code).toBe('DATASET_IMPORT_FAILED')
  })
})
