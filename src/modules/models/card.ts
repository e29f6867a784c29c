import { type Static, Type } from 'typebox'
import { StringEnum, TimestampSchema } from '../../shared/schemas.js'

/**
 * The model card: what a shipped model takes, how its raw inputs become tensors, what it
 * answers and how well it did on held-out data. Training scripts validate every card they
 * write against this schema; the serving side reads it to validate requests and build
 * tensors.
 */

/**
 * Model names are URL segments (kebab-case); input names are JSON fields (snake_case). The
 * descriptions are noun phrases: a pattern error reads "must be <description>".
 */
export const ModelNameSchema = Type.String({
  pattern: '^[a-z0-9]+(-[a-z0-9]+)*$',
  maxLength: 64,
  description: 'a model name in kebab-case, e.g. car-price',
})
const VERSION_PATTERN = '^\\d+\\.\\d+\\.\\d+$'
export const VersionNameSchema = Type.String({
  pattern: VERSION_PATTERN,
  maxLength: 32,
  description: 'a version as MAJOR.MINOR.PATCH, e.g. 1.0.0',
})
/** `?version=`: pins the version that answers instead of the active one. */
export const PinnedVersionSchema = Type.String({
  pattern: VERSION_PATTERN,
  maxLength: 32,
  description: 'a version as MAJOR.MINOR.PATCH (e.g. 1.0.0) to answer instead of the active one',
})
const InputNameSchema = Type.String({ pattern: '^[a-z][a-z0-9]*(_[a-z0-9]+)*$', maxLength: 64 })
const FloatsSchema = Type.Array(Type.Number())

export const ModelInputSchema = Type.Object(
  {
    name: InputNameSchema,
    type: StringEnum(['number', 'integer', 'category'] as const),
    description: Type.String(),
    unit: Type.Optional(Type.String({ description: 'e.g. "cm", "km", "kW"' })),
    minimum: Type.Optional(Type.Number()),
    maximum: Type.Optional(Type.Number()),
    categories: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
    required: Type.Boolean(),
    default: Type.Optional(
      Type.Union([Type.Number(), Type.String()], {
        description: 'The value the model imputes when the input is missing.',
      }),
    ),
  },
  { additionalProperties: false },
)

/** One input tensor of the ONNX graph, and which model inputs fill its columns. */
export const TensorSpecSchema = Type.Object(
  {
    name: Type.String(),
    dtype: StringEnum(['float32', 'int64', 'string'] as const),
    shape: Type.Array(Type.Union([Type.Integer({ minimum: 1 }), Type.String()])),
    columns: Type.Array(Type.String(), {
      description: 'Model input names, in the order of the last axis.',
    }),
    missing: Type.Union([Type.Literal('NaN'), Type.Literal('')], {
      description: 'What a missing input is sent as in this tensor.',
    }),
  },
  { additionalProperties: false },
)

const stepOptions = { additionalProperties: false } as const
const common = {
  in_graph: Type.Boolean({
    description: 'true: the ONNX graph does this step; false: the caller must do it first.',
  }),
  columns: Type.Array(Type.String(), { minItems: 1 }),
}

export const PreprocessingStepSchema = Type.Union([
  Type.Object(
    {
      step: Type.Literal('impute'),
      strategy: StringEnum(['median', 'most_frequent'] as const),
      values: Type.Array(Type.Union([Type.Number(), Type.String()])),
      ...common,
    },
    stepOptions,
  ),
  Type.Object(
    { step: Type.Literal('standardize'), mean: FloatsSchema, scale: FloatsSchema, ...common },
    stepOptions,
  ),
  Type.Object(
    {
      step: Type.Literal('one_hot'),
      categories: Type.Array(Type.Array(Type.String())),
      ...common,
    },
    stepOptions,
  ),
])

export const ModelOutputSchema = Type.Object(
  {
    name: Type.String(),
    dtype: StringEnum(['float32', 'int64'] as const),
    shape: Type.Array(Type.Union([Type.Integer({ minimum: 1 }), Type.String()])),
    description: Type.String(),
    unit: Type.Optional(Type.String()),
    labels: Type.Optional(
      Type.Array(Type.String(), { description: 'Class names, by index (classifiers).' }),
    ),
  },
  { additionalProperties: false },
)

/**
 * An inference server outside this process that answers for the model. Only an admin
 * registers a card, and its host must be in REMOTE_BACKEND_ALLOWED_HOSTS both then and at
 * every call: nothing in a prediction request can point the service anywhere else.
 */
export const RemoteBackendSchema = Type.Object(
  {
    kind: StringEnum(['kserve-v2', 'openai'] as const, {
      description:
        'kserve-v2: Open Inference Protocol REST (POST {url}/v2/models/{model}/infer); openai: an OpenAI-compatible server (POST {url}/v1/chat/completions).',
    }),
    url: Type.String({
      pattern: '^https?://[^/?#@\\s]+(/[^?#\\s]*)?$',
      maxLength: 2048,
      description: 'the base URL of the upstream server, without credentials, query or fragment',
    }),
    model: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]*$',
      maxLength: 256,
      description: 'the model name upstream',
    }),
  },
  { additionalProperties: false },
)

/**
 * How a shipped character-level model generates text: the graph reads the last
 * `context_length` characters as indexes into `vocabulary` and answers next-character logits.
 */
export const GenerationSchema = Type.Object(
  {
    vocabulary: Type.Array(Type.String({ minLength: 1, maxLength: 1 }), {
      minItems: 2,
      uniqueItems: true,
      description: 'The characters the model knows, by index.',
    }),
    context_length: Type.Integer({ minimum: 1, maximum: 4096 }),
    input: Type.String({ description: 'The graph input: int64 [N, context_length] indexes.' }),
    output: Type.String({ description: 'The graph output: float32 [N, vocabulary] logits.' }),
    pad: Type.String({
      minLength: 1,
      maxLength: 1,
      description:
        'The character a context shorter than context_length is padded with, and that stands for characters outside the vocabulary.',
    }),
  },
  { additionalProperties: false },
)

/**
 * How an image model reads a picture: the uploaded file is decoded, converted to `channels`
 * (3: in `color_order`; 1: greyscale), resized to `width` x `height` as `resize` says, and
 * each value becomes `(pixel * rescale - mean[c]) / std[c]` in a float32 tensor laid out as
 * `layout`. torchvision and timm models take RGB, NCHW, rescale 1/255 and the ImageNet
 * mean and std. The class names are the labels of the card's float32 output.
 */
export const ImageInputSchema = Type.Object(
  {
    input: Type.String({
      description:
        'The graph input the pixels feed: float32, [N, channels, height, width] (NCHW) or [N, height, width, channels] (NHWC).',
    }),
    width: Type.Integer({ minimum: 1, maximum: 4096 }),
    height: Type.Integer({ minimum: 1, maximum: 4096 }),
    channels: Type.Union([Type.Literal(1), Type.Literal(3)], {
      description: '3 for colour, 1 for greyscale.',
    }),
    color_order: StringEnum(['RGB', 'BGR'] as const, {
      description: 'The order of the colour channels (3 channels); Caffe-era models take BGR.',
    }),
    resize: StringEnum(['fill', 'cover', 'contain'] as const, {
      description:
        'fill: stretch to the size; cover: scale the shorter side to fit, then crop the centre; contain: scale the longer side to fit, then pad with black.',
    }),
    layout: StringEnum(['NCHW', 'NHWC'] as const),
    rescale: Type.Number({
      exclusiveMinimum: 0,
      description:
        'Each 0-255 pixel value is multiplied by this before normalisation: 1/255 for models trained on [0, 1] values, 1 for raw values.',
    }),
    mean: Type.Array(Type.Number(), { description: 'Subtracted from each channel, in order.' }),
    std: Type.Array(Type.Number(), { description: 'Each channel is then divided by this.' }),
    scores: StringEnum(['probabilities', 'logits'] as const, {
      description:
        'What the labelled output holds: probabilities, or logits the server turns into probabilities with a softmax.',
    }),
  },
  { additionalProperties: false },
)

/**
 * The distribution of one input in the training data, which drift is measured against.
 * Numeric: `edges` cut the line into `edges.length + 1` bins (a value equal to an edge
 * falls in the bin above it) and `frequencies` holds each bin's share. Categorical: each
 * category's share, in the order of `categories`.
 */
export const ReferenceFeatureSchema = Type.Union([
  Type.Object(
    {
      name: Type.String(),
      kind: Type.Literal('numeric'),
      edges: Type.Array(Type.Number(), { minItems: 1 }),
      frequencies: Type.Array(Type.Number({ minimum: 0, maximum: 1 }), { minItems: 2 }),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      name: Type.String(),
      kind: Type.Literal('categorical'),
      categories: Type.Array(Type.String(), { minItems: 1 }),
      frequencies: Type.Array(Type.Number({ minimum: 0, maximum: 1 }), { minItems: 1 }),
    },
    { additionalProperties: false },
  ),
])

export const ReferenceDistributionSchema = Type.Object(
  {
    rows: Type.Integer({ minimum: 1, description: 'Training rows the shares were counted on.' }),
    features: Type.Array(ReferenceFeatureSchema, { minItems: 1 }),
  },
  { additionalProperties: false },
)

export const ModelCardSchema = Type.Object(
  {
    name: ModelNameSchema,
    version: VersionNameSchema,
    task: StringEnum(['classification', 'regression', 'text-generation'] as const),
    description: Type.String(),
    // Empty only for text generation and image models, whose request is a prompt or a
    // picture (card-consistency.ts).
    inputs: Type.Array(ModelInputSchema),
    preprocessing: Type.Object(
      {
        tensors: Type.Array(TensorSpecSchema),
        steps: Type.Array(PreprocessingStepSchema),
      },
      { additionalProperties: false },
    ),
    outputs: Type.Array(ModelOutputSchema),
    backend: Type.Optional(RemoteBackendSchema),
    generation: Type.Optional(GenerationSchema),
    image: Type.Optional(ImageInputSchema),
    training: Type.Object(
      {
        algorithm: Type.String(),
        hyperparameters: Type.Record(Type.String(), Type.Union([Type.Number(), Type.String()])),
        seed: Type.Integer(),
        train_rows: Type.Integer({ minimum: 1 }),
        test_rows: Type.Integer({ minimum: 1 }),
      },
      { additionalProperties: false },
    ),
    metrics: Type.Record(Type.String(), Type.Number(), {
      description: 'Measured on the held-out rows.',
    }),
    training_data_sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    created_at: TimestampSchema,
    reference: Type.Optional(ReferenceDistributionSchema),
  },
  { additionalProperties: false },
)

export type ModelInput = Static<typeof ModelInputSchema>
export type TensorSpec = Static<typeof TensorSpecSchema>
export type PreprocessingStep = Static<typeof PreprocessingStepSchema>
export type ModelOutput = Static<typeof ModelOutputSchema>
export type ModelCard = Static<typeof ModelCardSchema>
export type RemoteBackend = Static<typeof RemoteBackendSchema>
export type Generation = Static<typeof GenerationSchema>
export type ImageInput = Static<typeof ImageInputSchema>
export type ReferenceFeature = Static<typeof ReferenceFeatureSchema>
export type ReferenceDistribution = Static<typeof ReferenceDistributionSchema>
