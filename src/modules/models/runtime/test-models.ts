/**
 * Tiny ONNX models built in code for tests, so no binary fixture has to be kept in step with
 * the code. Opset 17, IR version 8. Uses the `onnx-proto` dev dependency: import this file
 * from tests only. `linearClassifierSpec` in test-backend.ts computes what
 * `linearClassifierModel` does, so a test can run against either backend.
 */
import onnxProto, { type onnx as proto } from 'onnx-proto'
import { IRIS_LIKE, type LinearClassifier } from './test-backend.js'

const { onnx } = onnxProto
const { DataType } = onnx.TensorProto
const { AttributeType } = onnx.AttributeProto

type ProtoElementType = 'float32' | 'float16' | 'int64' | 'string'

const protoTypeOf: Record<ProtoElementType, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int64: DataType.INT64,
  string: DataType.STRING,
}

/** A graph input or output; a string dim is symbolic (`'batch'`), null dynamic and unnamed. */
export interface ValueSpec {
  name: string
  type: ProtoElementType
  shape: (number | string | null)[]
}

export interface NodeSpec {
  op: string
  inputs: string[]
  outputs: string[]
  attributes?: Record<string, number>
}

export interface FloatInitializer {
  name: string
  dims: number[]
  values: ArrayLike<number>
}

export interface GraphSpec {
  inputs: ValueSpec[]
  outputs: ValueSpec[]
  nodes: NodeSpec[]
  initializers?: FloatInitializer[]
}

function valueInfo(spec: ValueSpec): proto.IValueInfoProto {
  return {
    name: spec.name,
    type: {
      tensorType: {
        elemType: protoTypeOf[spec.type],
        shape: {
          dim: spec.shape.map((dim) => {
            if (dim === null) return {}
            return typeof dim === 'string' ? { dimParam: dim } : { dimValue: dim }
          }),
        },
      },
    },
  }
}

/** Serialises a graph as an ONNX model file. Integer attributes only, which is all tests need. */
export function buildModel(spec: GraphSpec): Uint8Array {
  const graph: proto.IGraphProto = {
    name: 'test_graph',
    input: spec.inputs.map(valueInfo),
    output: spec.outputs.map(valueInfo),
    node: spec.nodes.map((node, index) => ({
      name: `${node.op.toLowerCase()}_${index}`,
      opType: node.op,
      input: node.inputs,
      output: node.outputs,
      attribute: Object.entries(node.attributes ?? {}).map(([name, i]) => ({
        name,
        type: AttributeType.INT,
        i,
      })),
    })),
    initializer: (spec.initializers ?? []).map((init) => ({
      name: init.name,
      dims: init.dims,
      dataType: DataType.FLOAT,
      floatData: Array.from(init.values),
    })),
  }
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'orderflow-tests',
    opsetImport: [{ domain: '', version: 17 }],
    graph,
  })
  return onnx.ModelProto.encode(model).finish()
}

/**
 * `probabilities = softmax(x·W + b)` and `label = argmax(x·W + b)`, with a dynamic batch dim:
 * x float32 [batch, features] -> probabilities float32 [batch, classes], label int64 [batch].
 */
export function linearClassifierModel(model: LinearClassifier = IRIS_LIKE): Uint8Array {
  const features = model.weights.length
  const classes = model.bias.length
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', features] }],
    outputs: [
      { name: 'probabilities', type: 'float32', shape: ['batch', classes] },
      { name: 'label', type: 'int64', shape: ['batch'] },
    ],
    initializers: [
      { name: 'W', dims: [features, classes], values: model.weights.flat() },
      { name: 'b', dims: [classes], values: model.bias },
    ],
    nodes: [
      { op: 'MatMul', inputs: ['x', 'W'], outputs: ['xw'] },
      { op: 'Add', inputs: ['xw', 'b'], outputs: ['logits'] },
      { op: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attributes: { axis: -1 } },
      {
        op: 'ArgMax',
        inputs: ['logits'],
        outputs: ['label'],
        attributes: { axis: 1, keepdims: 0 },
      },
    ],
  })
}

/**
 * `y = x·W·W·…` with a `size`×`size` W, `depth` times: heavy enough to keep a core busy for a
 * while, so tests can watch the event loop during a run.
 */
export function matMulChainModel(size: number, depth: number): Uint8Array {
  const values = new Float32Array(size * size).map((_, i) => ((i % 7) - 3) / size)
  const nodes: NodeSpec[] = []
  for (let step = 0; step < depth; step++) {
    const output = step === depth - 1 ? 'y' : `h${step}`
    nodes.push({
      op: 'MatMul',
      inputs: [step === 0 ? 'x' : `h${step - 1}`, 'W'],
      outputs: [output],
    })
  }
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', size] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', size] }],
    initializers: [{ name: 'W', dims: [size, size], values }],
    nodes,
  })
}

/** Passes a string tensor through: a `string` input and output, a dim without a name. */
export function stringIdentityModel(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'text', type: 'string', shape: [null, 2] }],
    outputs: [{ name: 'same', type: 'string', shape: [null, 2] }],
    nodes: [{ op: 'Identity', inputs: ['text'], outputs: ['same'] }],
  })
}

/** A valid graph with a float16 output, which the server cannot pass on. */
export function float16OutputModel(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 2] }],
    outputs: [{ name: 'half', type: 'float16', shape: ['batch', 2] }],
    nodes: [{ op: 'Cast', inputs: ['x'], outputs: ['half'], attributes: { to: DataType.FLOAT16 } }],
  })
}

/** A well-formed file whose graph is broken: its node reads an input nothing provides. */
export function brokenGraphModel(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 2] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 2] }],
    nodes: [{ op: 'Add', inputs: ['x', 'missing'], outputs: ['y'] }],
  })
}

/** Bytes that are no ONNX model: deterministic noise, so a failure reproduces. */
export function notOnnxBytes(length = 256): Uint8Array {
  const bytes = new Uint8Array(length)
  let state = 0x2545f491
  for (let i = 0; i < length; i++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    bytes[i] = state & 0xff
  }
  return bytes
}
