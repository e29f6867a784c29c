import { type Static, Type } from 'typebox'

/**
 * The Open Inference Protocol (KServe v2) REST bodies, as its clients send and read them.
 * Field names are the protocol's, not ours. Objects stay open (no `additionalProperties:
 * false`): clients add members the protocol allows, such as `parameters`, and must not be
 * refused for it.
 */

const ParametersSchema = Type.Record(Type.String(), Type.Unknown(), {
  description: 'Free-form parameters; accepted and ignored.',
})

const DatatypeSchema = Type.String({
  description:
    'BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP32, FP64 or BYTES.',
  examples: ['FP32'],
})

// Items are left untyped: the codec checks every element against the input's datatype and
// names the bad ones, and the serialiser writes each element as it is.
const TensorDataSchema = Type.Array(Type.Unknown(), {
  description:
    'The elements in row-major order, flat or nested as the shape: numbers, booleans for ' +
    'BOOL, strings for BYTES.',
  examples: [[5.1, 3.5, 1.4, 0.2]],
})

export const InferInputSchema = Type.Object({
  name: Type.String({ minLength: 1, examples: ['x'] }),
  shape: Type.Array(Type.Integer({ minimum: 0 }), { examples: [[1, 4]] }),
  datatype: DatatypeSchema,
  parameters: Type.Optional(ParametersSchema),
  data: TensorDataSchema,
})

export const RequestedOutputSchema = Type.Object({
  name: Type.String({ minLength: 1, examples: ['probabilities'] }),
  parameters: Type.Optional(ParametersSchema),
})

export const InferRequestSchema = Type.Object({
  id: Type.Optional(Type.String({ description: 'Echoed in the response.' })),
  parameters: Type.Optional(ParametersSchema),
  inputs: Type.Array(InferInputSchema, { minItems: 1 }),
  outputs: Type.Optional(
    Type.Array(RequestedOutputSchema, {
      description: 'The outputs to return; every output of the model when omitted or empty.',
    }),
  ),
})

export const InferOutputSchema = Type.Object({
  name: Type.String(),
  datatype: DatatypeSchema,
  shape: Type.Array(Type.Integer({ minimum: 0 })),
  data: Type.Array(Type.Unknown(), {
    description: 'Flat, row-major. INT64 and UINT64 as JSON numbers.',
  }),
})

export const InferResponseSchema = Type.Object({
  model_name: Type.String(),
  model_version: Type.String(),
  id: Type.Optional(Type.String()),
  outputs: Type.Array(InferOutputSchema),
})

export const MetadataTensorSchema = Type.Object({
  name: Type.String(),
  datatype: DatatypeSchema,
  shape: Type.Array(Type.Integer({ minimum: -1 }), {
    description: 'Sizes by axis; -1 for a dimension of any size (the batch).',
    examples: [[-1, 4]],
  }),
})

export const ModelMetadataSchema = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String(), { description: 'Every registered version.' }),
  platform: Type.String({ examples: ['onnxruntime_onnx'] }),
  inputs: Type.Array(MetadataTensorSchema),
  outputs: Type.Array(MetadataTensorSchema),
})

export const ServerMetadataSchema = Type.Object({
  name: Type.String(),
  version: Type.String(),
  extensions: Type.Array(Type.String()),
})

export type InferInput = Static<typeof InferInputSchema>
export type InferRequest = Static<typeof InferRequestSchema>
export type InferOutput = Static<typeof InferOutputSchema>
export type InferResponse = Static<typeof InferResponseSchema>
export type MetadataTensor = Static<typeof MetadataTensorSchema>
export type ModelMetadata = Static<typeof ModelMetadataSchema>
