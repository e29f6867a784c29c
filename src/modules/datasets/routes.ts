import multipart, { type MultipartFile } from '@fastify/multipart'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { callerOf } from '../../platform/auth.js'
import { assertValid } from '../../platform/validation.js'
import { AppError, ValidationFailed } from '../../shared/errors.js'
import { asMalformedMultipart } from '../../shared/multipart.js'
import { IdParamsSchema, problemResponses } from '../../shared/schemas.js'
import { DatasetTooLarge, DatasetUploadNotMultipart } from './errors.js'
import {
  BatchResultSchema,
  DatasetAcceptedSchema,
  DatasetListQuerySchema,
  DatasetPageSchema,
  DatasetSchema,
  DatasetUpdateSchema,
  DownloadQuerySchema,
  RowsPageSchema,
  type RowsQuery,
  RowsQuerySchema,
  type UploadFields,
  UploadFieldsSchema,
} from './schemas.js'
import type { DatasetService, UploadOutcome } from './service.js'
import { removeFile, type SpooledFile, spool, UploadTooLarge } from './spool.js'

export interface DatasetRoutesOptions {
  datasets: DatasetService
  /** Largest file accepted (DATASET_MAX_BYTES); a larger one answers 413. */
  maxBytes: number
  /** Files one batch upload may carry. */
  batchMaxFiles: number
  /** Where uploads are spooled while they are read. */
  spoolDir: string
}

const tags = ['datasets']
const locationOf = (id: string) => `/v1/datasets/${id}`
const ownership =
  'A user sees and changes only their own datasets (another user’s answers 404); viewers and ' +
  'admins read every dataset; admins change every dataset.'
const TEXT_FIELDS = ['name', 'description', 'delimiter', 'encoding', 'on_error', 'schema'] as const

const notMultipart = (contentType: string | undefined) =>
  new DatasetUploadNotMultipart(
    `${contentType ? `The media type ${contentType.split(';')[0]?.slice(0, 100)} is` : 'A body without a Content-Type is'} not accepted here: upload the file as multipart/form-data.`,
    { accepted: ['multipart/form-data'] },
  )

interface ReadUpload {
  files: { file: SpooledFile; filename: string }[]
  fields: UploadFields
}

/**
 * Spools every file part to disk as it arrives (never whole in memory) and collects the
 * text fields, validated together once the body is read. Files already spooled are removed
 * when the body turns out bad.
 */
async function readUpload(
  request: FastifyRequest,
  spoolDir: string,
  maxFiles: number,
): Promise<ReadUpload> {
  const files: ReadUpload['files'] = []
  const raw: Record<string, unknown> = {}
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (files.length >= maxFiles) {
          part.file.resume()
          throw new ValidationFailed([
            { path: 'body', message: `must hold at most ${maxFiles} file(s)` },
          ])
        }
        const file = part as MultipartFile
        const spooled = await spool(file.file, spoolDir, () => file.file.truncated).catch(
          (error) => {
            if (error instanceof UploadTooLarge)
              throw new DatasetTooLarge('The file is larger than the limit.')
            throw error
          },
        )
        files.push({ file: spooled, filename: file.filename })
      } else if ((TEXT_FIELDS as readonly string[]).includes(part.fieldname)) {
        raw[part.fieldname] = part.value
      } else {
        throw new ValidationFailed([
          { path: part.fieldname.slice(0, 100), message: 'is not a known field' },
        ])
      }
    }
    if (files.length === 0) throw new ValidationFailed([{ path: 'file', message: 'is required' }])
    if (typeof raw.schema === 'string') {
      try {
        raw.schema = JSON.parse(raw.schema)
      } catch {
        throw new ValidationFailed([{ path: 'schema', message: 'must be JSON' }])
      }
    }
    return { files, fields: assertValid<UploadFields>(UploadFieldsSchema, raw, 'body') }
  } catch (error) {
    await Promise.all(files.map(({ file }) => removeFile(file.path)))
    if ((error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
      throw new DatasetTooLarge('The file is larger than the limit.')
    }
    throw asMalformedMultipart(error)
  }
}

function reply201or202(outcome: UploadOutcome) {
  return outcome.status === 201
    ? outcome.dataset
    : { dataset: outcome.dataset, job_id: outcome.job_id, job_url: `/v1/jobs/${outcome.job_id}` }
}

export const datasetRoutes: FastifyPluginAsyncTypebox<DatasetRoutesOptions> = async (
  app,
  { datasets, maxBytes, batchMaxFiles, spoolDir },
) => {
  // Multipart is read by the upload routes alone: every other route stays JSON only.
  await app.register(async (upload) => {
    upload.removeAllContentTypeParsers()
    await upload.register(multipart, {
      limits: {
        fileSize: maxBytes,
        files: batchMaxFiles,
        fields: TEXT_FIELDS.length,
        parts: batchMaxFiles + TEXT_FIELDS.length,
      },
    })
    upload.addContentTypeParser('*', (request, _payload, done) =>
      done(notMultipart(request.headers['content-type']), undefined),
    )
    upload.addHook('preValidation', async (request) => {
      if (!request.isMultipart()) throw notMultipart(request.headers['content-type'])
    })

    upload.post(
      '',
      {
        schema: {
          summary: 'Upload a dataset',
          description:
            'A `multipart/form-data` body with a `file` part (CSV with a header row, a JSON array ' +
            'of objects, NDJSON or Parquet, recognised from the content) and optional fields ' +
            '`name`, `description`, `delimiter`, `encoding`, `on_error` (`fail` or `skip`) and ' +
            '`schema` (JSON: `[{name, type, nullable}]`; inferred otherwise). Files up to ' +
            'DATASET_INLINE_MAX_BYTES import now (201); larger ones in a `dataset_import` job ' +
            '(202, the dataset `importing`). A malformed file answers 422 DATASET_IMPORT_FAILED ' +
            'with its first bad lines, and nothing is kept.',
          tags,
          consumes: ['multipart/form-data'],
          response: {
            201: DatasetSchema,
            202: DatasetAcceptedSchema,
            ...problemResponses(400, 413, 415, 422),
          },
        },
      },
      async (request, reply) => {
        const { files, fields } = await readUpload(request, spoolDir, 1)
        const [{ file, filename }] = files as [ReadUpload['files'][number]]
        const outcome = await datasets.upload(callerOf(request), {
          ...fields,
          file,
          filename,
          requestId: request.id,
        })
        return reply
          .code(outcome.status)
          .header('location', locationOf(outcome.dataset.id))
          .send(reply201or202(outcome))
      },
    )

    upload.post(
      '/batch',
      {
        schema: {
          summary: 'Upload several datasets',
          description:
            'Every file part becomes a dataset of its own, named after its file, with the ' +
            'request’s other fields applied to each. The answer is 200 with one outcome per ' +
            'file, in order: `status` is what a single upload of that file would have answered ' +
            '(201, 202, 413, 415, 422), with the dataset or the problem; one bad file does not ' +
            `stop the others. At most ${batchMaxFiles} files.`,
          tags,
          consumes: ['multipart/form-data'],
          response: { 200: BatchResultSchema, ...problemResponses(400, 413, 415, 422) },
        },
      },
      async (request) => {
        const { files, fields } = await readUpload(request, spoolDir, batchMaxFiles)
        const caller = callerOf(request)
        const items = []
        for (const { file, filename } of files) {
          try {
            const outcome = await datasets.upload(caller, {
              ...fields,
              name: undefined,
              file,
              filename,
              requestId: request.id,
            })
            items.push(
              outcome.status === 201
                ? { file: filename, status: 201, dataset: outcome.dataset }
                : { file: filename, status: 202, dataset: outcome.dataset, job_id: outcome.job_id },
            )
          } catch (error) {
            if (!(error instanceof AppError) || error.status >= 500) throw error
            items.push({
              file: filename,
              status: error.status,
              error: { code: error.code, detail: error.message, ...error.extensions },
            })
          }
        }
        return { items }
      },
    )
  })

  app.get(
    '',
    {
      schema: {
        summary: 'List datasets',
        description: `Newest first; filter by format and status, search name and description with \`q\`. ${ownership}`,
        tags,
        querystring: DatasetListQuerySchema,
        response: { 200: DatasetPageSchema, ...problemResponses(422) },
      },
    },
    async (request) => datasets.list(callerOf(request), request.query),
  )

  app.get(
    '/:id',
    {
      schema: {
        summary: 'Get a dataset',
        description: `Metadata, columns with their types and statistics, and the import report. ${ownership}`,
        tags,
        params: IdParamsSchema,
        response: { 200: DatasetSchema, ...problemResponses(404, 422) },
      },
    },
    async (request) => datasets.get(callerOf(request), request.params.id),
  )

  app.get(
    '/:id/rows',
    {
      schema: {
        summary: 'Read a dataset’s rows',
        description:
          'Paged by `page`/`page_size`, or by `cursor` (the previous page’s `next_cursor`) for ' +
          'deep pages. Filters `filter[<column>][<op>]=<value>` are typed by the column: an ' +
          'operator that does not apply to its type, or a value that is not of it, answers 422 ' +
          'naming the column. `sort=<column>` or `-<column>`; `columns=a,b` selects. ' +
          `409 DATASET_NOT_READY while importing or after a failed import. ${ownership}`,
        tags,
        params: IdParamsSchema,
        querystring: RowsQuerySchema,
        response: { 200: RowsPageSchema, ...problemResponses(404, 409, 422) },
      },
    },
    async (request) =>
      datasets.rows(callerOf(request), request.params.id, request.query as RowsQuery),
  )

  app.get(
    '/:id/download',
    {
      schema: {
        summary: 'Download a dataset',
        description:
          'Streamed as CSV (default), NDJSON or Parquet. CSV text cells starting with `=`, `+`, ' +
          '`-`, `@`, tab or CR get a leading apostrophe, so no spreadsheet runs them as formulas.',
        tags,
        params: IdParamsSchema,
        querystring: DownloadQuerySchema,
        response: {
          200: Type.String({ description: 'The rows in the requested format.' }),
          ...problemResponses(404, 409, 422),
        },
      },
    },
    async (request, reply) => {
      const file = await datasets.download(
        callerOf(request),
        request.params.id,
        request.query.format ?? 'csv',
      )
      return (
        reply
          .header('content-type', file.contentType)
          .header('content-disposition', `attachment; filename="${file.filename}"`)
          // A stream is sent as it is; the schema only documents the body.
          .send(file.body as unknown as string)
      )
    },
  )

  app.patch(
    '/:id',
    {
      schema: {
        summary: 'Rename or describe a dataset',
        description: ownership,
        tags,
        params: IdParamsSchema,
        body: DatasetUpdateSchema,
        response: { 200: DatasetSchema, ...problemResponses(400, 404, 413, 415, 422) },
      },
    },
    async (request) => datasets.update(callerOf(request), request.params.id, request.body),
  )

  app.delete(
    '/:id',
    {
      schema: {
        summary: 'Delete a dataset',
        description: `Removes the dataset and its rows. ${ownership}`,
        tags,
        params: IdParamsSchema,
        response: { 204: Type.Null({ description: 'Deleted.' }), ...problemResponses(404, 422) },
      },
    },
    async (request, reply) => {
      await datasets.remove(callerOf(request), request.params.id)
      return reply.code(204).send(null)
    },
  )
}
