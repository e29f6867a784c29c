import onnxProto from 'onnx-proto'

const { onnx } = onnxProto

/** ONNX 1.13 (IR 8) is what ONNX Runtime 1.14+ reads; opset 17 covers every op we use. */
const IR_VERSION = 8
const OPSET = 17
const ML_OPSET = 3

export type ElementType = 'float' | 'int64' | 'string'

const ELEMENT_TYPES: Record<ElementType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  string: onnx.TensorProto.DataType.STRING,
}

/** A dimension is a fixed size or a symbolic one such as the batch size `N`. */
export type Dim = number | string

export interface ValueInfo {
  name: string
  type: ElementType
  shape: Dim[]
  doc?: string
}

export type AttributeValue = number | string | number[] | string[] | { int: number }

export interface Node {
  op: string
  inputs: string[]
  outputs: string[]
  domain?: 'ai.onnx.ml'
  attributes?: Record<string, AttributeValue>
}

export interface Initializer {
  name: string
  type: 'float' | 'int64'
  dims: number[]
  values: readonly number[]
}

export interface Graph {
  name: string
  doc: string
  inputs: ValueInfo[]
  outputs: ValueInfo[]
  initializers: Initializer[]
  nodes: Node[]
}

export interface ModelMeta {
  producer: string
  version: number
  doc: string
  metadata: Record<string, string>
}

const utf8 = (text: string) => new TextEncoder().encode(text)

function valueInfo(info: ValueInfo) {
  return onnx.ValueInfoProto.create({
    name: info.name,
    docString: info.doc ?? '',
    type: {
      tensorType: {
        elemType: ELEMENT_TYPES[info.type],
        shape: {
          dim: info.shape.map((dim) =>
            typeof dim === 'number' ? { dimValue: dim } : { dimParam: dim },
          ),
        },
      },
    },
  })
}

function tensor(init: Initializer) {
  const common = { name: init.name, dims: init.dims, dataType: ELEMENT_TYPES[init.type] }
  return init.type === 'float'
    ? onnx.TensorProto.create({ ...common, floatData: [...init.values] })
    : onnx.TensorProto.create({ ...common, int64Data: [...init.values] })
}

function attribute(name: string, value: AttributeValue) {
  const { AttributeType } = onnx.AttributeProto
  if (typeof value === 'object' && !Array.isArray(value)) {
    return onnx.AttributeProto.create({ name, type: AttributeType.INT, i: value.int })
  }
  if (typeof value === 'number') {
    return onnx.AttributeProto.create({ name, type: AttributeType.FLOAT, f: value })
  }
  if (typeof value === 'string') {
    return onnx.AttributeProto.create({ name, type: AttributeType.STRING, s: utf8(value) })
  }
  if (value.every((item) => typeof item === 'string')) {
    return onnx.AttributeProto.create({
      name,
      type: AttributeType.STRINGS,
      strings: value.map((item) => utf8(item)),
    })
  }
  return onnx.AttributeProto.create({ name, type: AttributeType.INTS, ints: value as number[] })
}

/**
 * Encodes a graph as an ONNX model. protobufjs writes fields in declaration order, so the
 * same graph always gives the same bytes, which the reproducibility test relies on.
 */
export function encodeModel(graph: Graph, meta: ModelMeta): Uint8Array {
  const usesMl = graph.nodes.some((node) => node.domain === 'ai.onnx.ml')
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [
      { domain: '', version: OPSET },
      ...(usesMl ? [{ domain: 'ai.onnx.ml', version: ML_OPSET }] : []),
    ],
    producerName: meta.producer,
    producerVersion: '1',
    modelVersion: meta.version,
    docString: meta.doc,
    metadataProps: Object.entries(meta.metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      docString: graph.doc,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: graph.initializers.map(tensor),
      node: graph.nodes.map((node, index) =>
        onnx.NodeProto.create({
          name: `${node.op.toLowerCase()}_${index}`,
          opType: node.op,
          domain: node.domain ?? '',
          input: node.inputs,
          output: node.outputs,
          attribute: Object.entries(node.attributes ?? {}).map(([name, value]) =>
            attribute(name, value),
          ),
        }),
      ),
    },
  })
  return onnx.ModelProto.encode(model).finish()
}
