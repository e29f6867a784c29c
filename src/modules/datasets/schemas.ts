import { type Static, Type } from 'typebox'
import {
  IdSchema,
  PageQuerySchema,
  PageSchema,
  StringEnum,
  TimestampSchema,
} from '../../shared/schemas.js'
import { COLUMN_TYPES } from './columns.js'
import { ENCODINGS, FORMATS } from './readers.js'
import { FILTER_OPERATORS } from './repository.js'
import { DATASET_STATUSES } from './table.js'
import { DOWNLOAD_FORMATS } from './writers.js'

const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()])

export const BadLineSchema = Type.Object(
  {
    line: Type.Integer({
      description: 'The line in the file (CSV, NDJSON) or the record from 1 (JSON array, Parquet).',
    }),
    column: Type.Union([Type.String(), Type.Null()]),
    reason: Type.String(),
  },
  { additionalProperties: false },
)

export const ColumnStatsSchema = Type.Object(
  {
    min: Scalar,
    max: Scalar,
    mean: Type.Union([Type.Number(), Type.Null()], {
      description: 'Numbers: the mean; booleans: the share of true.',
    }),
    null_count: Type.Integer(),
    distinct_count: Type.Integer(),
    distinct_exact: Type.Boolean({
      description: 'False when distinct_count is a HyperLogLog estimate (about 1.6 % error).',
    }),
  },
  { additionalProperties: false },
)

export const DatasetColumnSchema = Type.Object(
  {
    name: Type.String({ description: 'The name rows, filters and sorts use.' }),
    source_name: Type.String({ description: 'The header or key as the file had it.' }),
    type: StringEnum(COLUMN_TYPES),
    nullable: Type.Boolean(),
    stats: Type.Optional(ColumnStatsSchema),
  },
  { additionalProperties: false },
)

export const DatasetSchema = Type.Object(
  {
    id: IdSchema,
    owner_id: IdSchema,
    name: Type.String(),
    description: Type.Union([Type.String(), Type.Null()]),
    format: StringEnum(FORMATS),
    status: StringEnum(DATASET_STATUSES),
    row_count: Type.Integer({ minimum: 0 }),
    size_bytes: Type.Integer({ minimum: 0 }),
    sha256: Type.Union([Type.String({ pattern: '^[0-9a-f]{64}$' }), Type.Null()], {
      description: 'SHA-256 of the uploaded file; null for a dataset a job produced.',
    }),
    columns: Type.Array(DatasetColumnSchema),
    import: Type.Object(
      {
        delimiter: Type.Optional(Type.String()),
        encoding: Type.Optional(Type.String()),
        on_error: Type.Optional(StringEnum(['fail', 'skip'] as const)),
        skipped_count: Type.Optional(Type.Integer()),
        skipped_lines: Type.Optional(Type.Array(BadLineSchema)),
      },
      { additionalProperties: false },
    ),
    error: Type.Union([
      Type.Object(
        {
          code: Type.String(),
          message: Type.String(),
          bad_lines: Type.Optional(Type.Array(BadLineSchema)),
          bad_line_count: Type.Optional(Type.Integer()),
        },
        { additionalProperties: false },
      ),
      Type.Null(),
    ]),
    job_id: Type.Union([IdSchema, Type.Null()], {
      description: 'The job that imports (or, for a batch prediction, produced) the dataset.',
    }),
    created_at: TimestampSchema,
    updated_at: TimestampSchema,
  },
  { additionalProperties: false },
)
export type Dataset = Static<typeof DatasetSchema>

export const DatasetAcceptedSchema = Type.Object(
  {
    dataset: DatasetSchema,
    job_id: IdSchema,
    job_url: Type.String({ examples: ['/v1/jobs/3f1c9b8e-6a52-4d7e-9a51-0c3f2b7d9e10'] }),
  },
  { additionalProperties: false },
)

export const DatasetUpdateSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
)
export type DatasetUpdate = Static<typeof DatasetUpdateSchema>

export const DatasetListQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    format: Type.Optional(StringEnum(FORMATS)),
    status: Type.Optional(StringEnum(DATASET_STATUSES)),
    q: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: 'Searches name and description.' }),
    ),
  },
  { additionalProperties: false },
)
export type DatasetListQuery = Static<typeof DatasetListQuerySchema>

export const DatasetPageSchema = PageSchema(DatasetSchema)

/** `filter[<column>][<operator>]`: the column is checked against the dataset, not here. */
export const FILTER_KEY = new RegExp(`^filter\\[([^\\]]+)\\]\\[(${FILTER_OPERATORS.join('|')})\\]$`)

export const RowsQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    cursor: Type.Optional(
      Type.String({ maxLength: 4000, description: 'The `next_cursor` of the previous page.' }),
    ),
    sort: Type.Optional(
      Type.String({ maxLength: 300, description: 'A column name, `-` first for descending.' }),
    ),
    columns: Type.Optional(
      Type.String({ maxLength: 20_000, description: 'Comma-separated column names to return.' }),
    ),
  },
  {
    additionalProperties: false,
    patternProperties: { [FILTER_KEY.source]: Type.String({ maxLength: 20_000 }) },
    description:
      'Filters as `filter[<column>][<op>]=<value>`, op one of eq, ne, gt, gte, lt, lte, in ' +
      '(comma-separated), contains (strings), is_null (true/false).',
  },
)
export type RowsQuery = Static<typeof RowsQuerySchema> & Record<string, unknown>

export const RowsPageSchema = Type.Object(
  {
    items: Type.Array(Type.Record(Type.String(), Type.Unknown())),
    page: Type.Integer({ minimum: 1 }),
    page_size: Type.Integer({ minimum: 1 }),
    total: Type.Integer({ minimum: 0 }),
    total_pages: Type.Integer({ minimum: 0 }),
    next_cursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `cursor` for the next page; null on the last page.',
    }),
  },
  { additionalProperties: false },
)

export const DownloadQuerySchema = Type.Object(
  { format: Type.Optional(StringEnum(DOWNLOAD_FORMATS, { default: 'csv' })) },
  { additionalProperties: false },
)

/** The `schema` part of an upload. */
export const DeclaredSchemaSchema = Type.Array(
  Type.Object(
    {
      name: Type.String({ minLength: 1 }),
      type: StringEnum(COLUMN_TYPES),
      nullable: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
  { minItems: 1, maxItems: 1600 },
)

/** The text fields an upload may carry beside its file. */
export const UploadFieldsSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    delimiter: Type.Optional(StringEnum([',', ';', '\t', '|'] as const)),
    encoding: Type.Optional(StringEnum(ENCODINGS)),
    on_error: Type.Optional(StringEnum(['fail', 'skip'] as const)),
    schema: Type.Optional(DeclaredSchemaSchema),
  },
  { additionalProperties: false },
)
export type UploadFields = Static<typeof UploadFieldsSchema>

export const BatchOutcomeSchema = Type.Object(
  {
    file: Type.String({ description: 'The file name as uploaded.' }),
    status: Type.Integer({ description: 'What a single upload of this file would have answered.' }),
    dataset: Type.Optional(DatasetSchema),
    job_id: Type.Optional(IdSchema),
    error: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
)

export const BatchResultSchema = Type.Object(
  { items: Type.Array(BatchOutcomeSchema) },
  { additionalProperties: false },
)
