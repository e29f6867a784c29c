import { describe, expect, it } from 'vitest'
import { shippedCard } from '../../../../test/models.js'
import { type FieldError, ValidationFailed } from '../../../shared/errors.js'
import {
  type Dim,
  type ElementType,
  type Feeds,
  feedMismatches,
  InferenceError,
  type ModelSignature,
  tensor,
} from '../runtime/backend.js'
import type { ServedVersion } from '../serving/types.js'
import {
  DATATYPES,
  datatypeOf,
  decodeInferRequest,
  elementTypeOf,
  encodeInferResponse,
  modelMetadata,
} from './codec.js'
import type { InferInput, InferRequest } from './schemas.js'

const irisCard = shippedCard('iris')

const IRIS: ModelSignature = {
  inputs: [{ name: 'x', type: 'float32', shape: ['batch', 4] }],
  outputs: [
    { name: 'probabilities', type: 'float32', shape: ['batch', 3] },
    { name: 'label', type: 'int64', shape: ['batch'] },
  ],
}

/** A model with a single input `v` of this type and shape. */
const single = (type: ElementType, shape: Dim[] = [-1]): ModelSignature => ({
  inputs: [{ name: 'v', type, shape }],
  outputs: [{ name: 'out', type, shape }],
})

const served = (signature: ModelSignature = IRIS): ServedVersion => ({
  name: 'iris',
  version: '1.2.0',
  card: irisCard,
  signature,
})

const x = (overrides: Partial<InferInput> = {}): InferInput => ({
  name: 'x',
  datatype: 'FP32',
  shape: [2, 4],
  data: [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
  ...overrides,
})

const v = (datatype: string, data: unknown[], shape = [data.length]): InferRequest => ({
  inputs: [{ name: 'v', datatype, shape, data }],
})

/** The field errors decodeInferRequest throws; fails the test when it does not throw. */
function problemsOf(signature: ModelSignature, body: InferRequest): FieldError[] {
  try {
    decodeInferRequest(signature, body)
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationFailed)
    return (error as ValidationFailed).errors
  }
  throw new Error('expected the request to be refused')
}

describe('datatypes', () => {
  it('maps every protocol datatype to an element type and back', () => {
    for (const datatype of DATATYPES) {
      const type = elementTypeOf(datatype) as ElementType
      expect(type).toBeDefined()
      expect(datatypeOf(type)).toBe(datatype)
    }
    expect(elementTypeOf('FP32')).toBe('float32')
    expect(elementTypeOf('BYTES')).toBe('string')
    expect(elementTypeOf('BOOL')).toBe('bool')
  })

  it('knows no FP16, BF16, lower-case or inherited names', () => {
    for (const name of ['FP16', 'BF16', 'fp32', 'toString', 'constructor']) {
      expect(elementTypeOf(name)).toBeUndefined()
    }
  })
})

describe('decodeInferRequest', () => {
  it('when data is flat, then the feed has the request shape and the values in order', () => {
    const feeds = decodeInferRequest(IRIS, { inputs: [x()] })
    expect(feeds.x?.type).toBe('float32')
    expect(feeds.x?.dims).toEqual([2, 4])
    expect(Array.from(feeds.x?.data as Float32Array)).toEqual(
      Array.from(Float32Array.of(5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3)),
    )
    expect(feedMismatches(IRIS, feeds)).toEqual([])
  })

  it('when data is nested as the shape, then it decodes as the same flat data', () => {
    const nested = x({
      data: [
        [5.1, 3.5, 1.4, 0.2],
        [6.7, 3.0, 5.2, 2.3],
      ],
    })
    expect(decodeInferRequest(IRIS, { inputs: [nested] })).toEqual(
      decodeInferRequest(IRIS, { inputs: [x()] }),
    )
  })

  it('when a three-axis tensor is nested, then it is read in row-major order', () => {
    const signature = single('int32', [-1, 2, 2])
    const feeds = decodeInferRequest(signature, {
      inputs: [
        {
          name: 'v',
          datatype: 'INT32',
          shape: [2, 2, 2],
          data: [
            [
              [1, 2],
              [3, 4],
            ],
            [
              [5, 6],
              [7, 8],
            ],
          ],
        },
      ],
    })
    expect(Array.from(feeds.v?.data as Int32Array)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  it('when nested data is ragged, then 422 names the row that breaks the shape', () => {
    const problems = problemsOf(IRIS, {
      inputs: [
        x({
          data: [
            [5.1, 3.5, 1.4, 0.2],
            [6.7, 3.0, 5.2],
          ],
        }),
      ],
    })
    expect(problems).toEqual([
      { path: 'body.inputs[0].data[1]', message: expect.stringContaining('has 3 items') },
    ])
  })

  it('when nested data has fewer rows than the shape, then 422 on data', () => {
    const problems = problemsOf(IRIS, { inputs: [x({ data: [[5.1, 3.5, 1.4, 0.2]] })] })
    expect(problems).toEqual([
      {
        path: 'body.inputs[0].data',
        message: expect.stringContaining('axis 0 of shape [2, 4] needs 2'),
      },
    ])
  })

  it('when nesting mixes rows and scalars, then 422 names the scalar', () => {
    const problems = problemsOf(IRIS, {
      inputs: [x({ data: [[5.1, 3.5, 1.4, 0.2], 6.7] })],
    })
    expect(problems).toEqual([
      {
        path: 'body.inputs[0].data[1]',
        message: expect.stringContaining('must be an array of 4 items'),
      },
    ])
  })

  it('when flat data does not fill the shape, then 422 says how many elements it needs', () => {
    const problems = problemsOf(IRIS, { inputs: [x({ data: [1, 2, 3] })] })
    expect(problems).toEqual([
      { path: 'body.inputs[0].data', message: 'has 3 elements; shape [2, 4] needs 8' },
    ])
  })

  it('when an input name is unknown, then 422 on its name, listing the inputs', () => {
    const problems = problemsOf(IRIS, { inputs: [x(), x({ name: 'petals' })] })
    expect(problems).toEqual([
      {
        path: 'body.inputs[1].name',
        message: "'petals' is not an input of the model; its inputs: x",
      },
    ])
  })

  it('when an input is given twice, then 422 on the second', () => {
    const problems = problemsOf(IRIS, { inputs: [x(), x()] })
    expect(problems).toEqual([{ path: 'body.inputs[1].name', message: "'x' is given twice" }])
  })

  it('when a declared input is missing, then 422 on inputs naming it with its datatype and shape', () => {
    const signature: ModelSignature = {
      inputs: [...IRIS.inputs, { name: 'ids', type: 'int64', shape: ['batch'] }],
      outputs: IRIS.outputs,
    }
    const problems = problemsOf(signature, { inputs: [x()] })
    expect(problems).toEqual([{ path: 'body.inputs', message: "lacks 'ids' (INT64 [-1])" }])
  })

  it('when the datatype differs from the declared one, then 422 on datatype and no element noise', () => {
    const problems = problemsOf(IRIS, { inputs: [x({ datatype: 'INT64', data: [1, 2] })] })
    expect(problems).toEqual([
      { path: 'body.inputs[0].datatype', message: "must be FP32 for input 'x', got INT64" },
      { path: 'body.inputs[0].data', message: 'has 2 elements; shape [2, 4] needs 8' },
    ])
  })

  it('when the datatype is FP16, then 422 says it is not supported and lists the datatypes', () => {
    const [problem] = problemsOf(IRIS, { inputs: [x({ datatype: 'FP16' })] })
    expect(problem?.path).toBe('body.inputs[0].datatype')
    expect(problem?.message).toContain('FP16 is not supported')
    expect(problem?.message).toContain(DATATYPES.join(', '))
  })

  it('when the shape has the wrong rank, then 422 on shape only', () => {
    const problems = problemsOf(IRIS, { inputs: [x({ shape: [8] })] })
    expect(problems).toEqual([
      { path: 'body.inputs[0].shape', message: 'must have 2 dims, as [-1, 4]; got [8]' },
    ])
  })

  it('when a fixed dim differs, then 422 on that axis', () => {
    const problems = problemsOf(IRIS, {
      inputs: [x({ shape: [4, 2], data: [1, 2, 3, 4, 5, 6, 7, 8] })],
    })
    expect(problems).toEqual([
      { path: 'body.inputs[0].shape[1]', message: 'must be 4, as [-1, 4]; got 2' },
    ])
  })

  it('when the shape is empty, then 422 asks for a row', () => {
    const problems = problemsOf(IRIS, { inputs: [x({ shape: [0, 4], data: [] })] })
    expect(problems).toEqual([
      { path: 'body.inputs[0].shape', message: 'describes an empty tensor; send one row or more' },
    ])
  })

  it('when a signature declares no shape, then any rank is accepted', () => {
    const feeds = decodeInferRequest(single('float64', []), v('FP64', [1, 2, 3, 4], [2, 2]))
    expect(feeds.v?.dims).toEqual([2, 2])
  })

  it('when elements are not numbers, then 422 names the first and counts the others', () => {
    const problems = problemsOf(IRIS, {
      inputs: [x({ data: [5.1, 'a', 1.4, null, 6.7, true, 5.2, 2.3] })],
    })
    expect(problems).toEqual([
      {
        path: 'body.inputs[0].data[1]',
        message: 'must be a number, got "a" (and 2 more invalid elements)',
      },
    ])
  })

  it('when a bad element is in nested data, then its path follows the nesting', () => {
    const problems = problemsOf(IRIS, {
      inputs: [
        x({
          data: [
            [5.1, 3.5, 1.4, 0.2],
            [6.7, 3.0, 'x', 2.3],
          ],
        }),
      ],
    })
    expect(problems).toEqual([
      { path: 'body.inputs[0].data[1][2]', message: 'must be a number, got "x"' },
    ])
  })

  it('when an FP32 element is beyond float range, then 422', () => {
    const problems = problemsOf(single('float32'), v('FP32', [1e39]))
    expect(problems).toEqual([
      { path: 'body.inputs[0].data[0]', message: '1e+39 is out of range for FP32' },
    ])
  })

  it.each([
    ['INT8', 'int8', 128, '128 is out of range for INT8 [-128, 127]'],
    ['UINT8', 'uint8', -1, '-1 is out of range for UINT8 [0, 255]'],
    ['INT16', 'int16', -32769, '-32769 is out of range for INT16 [-32768, 32767]'],
    ['UINT16', 'uint16', 65536, '65536 is out of range for UINT16 [0, 65535]'],
    ['INT32', 'int32', 2 ** 31, '2147483648 is out of range for INT32 [-2147483648, 2147483647]'],
    ['UINT32', 'uint32', 2 ** 32, '4294967296 is out of range for UINT32 [0, 4294967295]'],
    ['INT64', 'int64', 2 ** 63, '9223372036854776000 is out of range for INT64 [-2^63, 2^63 - 1]'],
    ['UINT64', 'uint64', -1, '-1 is out of range for UINT64 [0, 2^64 - 1]'],
    ['INT32', 'int32', 1.5, 'must be an integer for INT32, got 1.5'],
  ] as const)('when a %s element is %s, then 422 says so', (datatype, type, value, message) => {
    expect(problemsOf(single(type), v(datatype, [0, value]))).toEqual([
      { path: 'body.inputs[0].data[1]', message },
    ])
  })

  it('when an INT64 element is beyond what a JSON number carries exactly, then 422', () => {
    const [problem] = problemsOf(single('int64'), v('INT64', [2 ** 53]))
    expect(problem?.message).toContain('beyond ±9007199254740991')
  })

  it('decodes INT64 and UINT64 as BigInts, to the extremes a JSON number carries', () => {
    const max = Number.MAX_SAFE_INTEGER
    const int64 = decodeInferRequest(single('int64'), v('INT64', [-max, -1, 0, max]))
    expect(int64.v?.data).toEqual(BigInt64Array.of(BigInt(-max), -1n, 0n, BigInt(max)))
    const uint64 = decodeInferRequest(single('uint64'), v('UINT64', [0, max]))
    expect(uint64.v?.data).toEqual(BigUint64Array.of(0n, BigInt(max)))
  })

  it.each([
    ['INT8', 'int8', [-128, 127], Int8Array],
    ['UINT8', 'uint8', [0, 255], Uint8Array],
    ['INT16', 'int16', [-32768, 32767], Int16Array],
    ['UINT16', 'uint16', [0, 65535], Uint16Array],
    ['INT32', 'int32', [-(2 ** 31), 2 ** 31 - 1], Int32Array],
    ['UINT32', 'uint32', [0, 2 ** 32 - 1], Uint32Array],
    ['FP64', 'float64', [0.1, -1e300], Float64Array],
  ] as const)('decodes %s at its limits into a %s tensor', (datatype, type, values, Container) => {
    const feeds = decodeInferRequest(single(type), v(datatype, [...values]))
    expect(feeds.v).toEqual(tensor(type, [2], Container.from(values) as never))
  })

  it('decodes BOOL from JSON booleans and refuses 0 and 1', () => {
    const feeds = decodeInferRequest(single('bool'), v('BOOL', [true, false, true]))
    expect(feeds.v).toEqual(tensor('bool', [3], Uint8Array.of(1, 0, 1)))
    expect(problemsOf(single('bool'), v('BOOL', [1, 0]))).toEqual([
      {
        path: 'body.inputs[0].data[0]',
        message: 'must be true or false, got 1 (and 1 more invalid element)',
      },
    ])
  })

  it('decodes BYTES from strings, nested too, and refuses other values', () => {
    const signature = single('string', [-1, 2])
    const feeds = decodeInferRequest(signature, {
      inputs: [
        {
          name: 'v',
          datatype: 'BYTES',
          shape: [2, 2],
          data: [
            ['a', 'b'],
            ['', 'ü'],
          ],
        },
      ],
    })
    expect(feeds.v).toEqual(tensor('string', [2, 2], ['a', 'b', '', 'ü']))
    expect(problemsOf(signature, v('BYTES', ['a', 7], [1, 2]))).toEqual([
      { path: 'body.inputs[0].data[1]', message: 'must be a string, got 7' },
    ])
  })

  it('when a requested output is unknown, then 422 on its name, before anything runs', () => {
    const problems = problemsOf(IRIS, {
      inputs: [x()],
      outputs: [{ name: 'label' }, { name: 'logits' }],
    })
    expect(problems).toEqual([
      {
        path: 'body.outputs[1].name',
        message: "'logits' is not an output of the model; its outputs: probabilities, label",
      },
    ])
  })

  it('collects every problem of every input in one 422, with the first ones in its detail', () => {
    const signature: ModelSignature = {
      inputs: [
        { name: 'a', type: 'float32', shape: ['batch', 2] },
        { name: 'b', type: 'int64', shape: ['batch'] },
        { name: 'c', type: 'bool', shape: ['batch'] },
      ],
      outputs: [{ name: 'y', type: 'float32', shape: ['batch'] }],
    }
    let error: unknown
    try {
      decodeInferRequest(signature, {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] },
          { name: 'b', datatype: 'INT64', shape: [1], data: [0.5] },
          { name: 'zz', datatype: 'FP32', shape: [1], data: [1] },
        ],
        outputs: [{ name: 'nope' }],
      })
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ValidationFailed)
    const failed = error as ValidationFailed
    expect(failed.status).toBe(422)
    expect(failed.errors.map((problem) => problem.path)).toEqual([
      'body.inputs[0].shape[1]',
      'body.inputs[1].data[0]',
      'body.inputs[2].name',
      'body.inputs',
      'body.outputs[0].name',
    ])
    expect(failed.message).toMatch(
      /^The inference request does not fit the model: body\.inputs\[0\]\.shape\[1\] must be 2.*; and 2 more\.$/,
    )
  })
})

describe('encodeInferResponse', () => {
  const outputs: Feeds = {
    probabilities: tensor('float32', [2, 3], Float32Array.of(0.5, 0.25, 0.25, 0, 1, 0)),
    label: tensor('int64', [2], BigInt64Array.of(0n, 1n)),
  }

  it('answers every output in signature order, flat, INT64 as JSON numbers, echoing the id', () => {
    const response = encodeInferResponse(served(), outputs, { id: 'req-1' })
    expect(response).toEqual({
      model_name: 'iris',
      model_version: '1.2.0',
      id: 'req-1',
      outputs: [
        {
          name: 'probabilities',
          datatype: 'FP32',
          shape: [2, 3],
          data: [0.5, 0.25, 0.25, 0, 1, 0],
        },
        { name: 'label', datatype: 'INT64', shape: [2], data: [0, 1] },
      ],
    })
    expect(JSON.parse(JSON.stringify(response))).toEqual(response)
  })

  it('leaves id out when the request had none', () => {
    expect(encodeInferResponse(served(), outputs)).not.toHaveProperty('id')
  })

  it('answers only the requested outputs, in the requested order, once each', () => {
    const response = encodeInferResponse(served(), outputs, {
      requested: ['label', 'label'],
    })
    expect(response.outputs.map((output) => output.name)).toEqual(['label'])
    const both = encodeInferResponse(served(), outputs, { requested: ['label', 'probabilities'] })
    expect(both.outputs.map((output) => output.name)).toEqual(['label', 'probabilities'])
    expect(encodeInferResponse(served(), outputs, { requested: [] }).outputs).toHaveLength(2)
  })

  it('when a requested output is unknown, then 422 VALIDATION_FAILED on its name', () => {
    expect(() => encodeInferResponse(served(), outputs, { requested: ['logits'] })).toThrow(
      expect.objectContaining({
        code: 'VALIDATION_FAILED',
        errors: [expect.objectContaining({ path: 'body.outputs[0].name' })],
      }),
    )
  })

  it('when the model did not produce a declared output, then an InferenceError (500)', () => {
    expect(() => encodeInferResponse(served(), { label: outputs.label as never })).toThrow(
      InferenceError,
    )
  })

  it('writes BOOL as booleans, BYTES as strings and UINT64 as numbers', () => {
    const signature: ModelSignature = {
      inputs: [],
      outputs: [
        { name: 'b', type: 'bool', shape: [-1] },
        { name: 's', type: 'string', shape: [-1] },
        { name: 'u', type: 'uint64', shape: [-1] },
      ],
    }
    const response = encodeInferResponse(served(signature), {
      b: tensor('bool', [2], Uint8Array.of(1, 0)),
      s: tensor('string', [2], ['a', 'b']),
      u: tensor('uint64', [1], BigUint64Array.of(42n)),
    })
    expect(response.outputs).toEqual([
      { name: 'b', datatype: 'BOOL', shape: [2], data: [true, false] },
      { name: 's', datatype: 'BYTES', shape: [2], data: ['a', 'b'] },
      { name: 'u', datatype: 'UINT64', shape: [1], data: [42] },
    ])
  })
})

describe('modelMetadata', () => {
  it('lists the versions, the platform, and dynamic dims as -1', () => {
    const signature: ModelSignature = {
      inputs: [...IRIS.inputs, { name: 'extra', type: 'string', shape: [-1, 'n', 3] }],
      outputs: IRIS.outputs,
    }
    expect(modelMetadata(served(signature), ['1.2.0', '1.0.0'])).toEqual({
      name: 'iris',
      versions: ['1.2.0', '1.0.0'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [-1, 4] },
        { name: 'extra', datatype: 'BYTES', shape: [-1, -1, 3] },
      ],
      outputs: [
        { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
        { name: 'label', datatype: 'INT64', shape: [-1] },
      ],
    })
  })
})
