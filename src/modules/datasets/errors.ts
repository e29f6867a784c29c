import { defineError } from '../../shared/errors.js'

/** Also what another user's dataset answers, so ids of others leak nothing. */
export const DatasetNotFound = defineError('DATASET_NOT_FOUND', 404)
/** The upload is larger than DATASET_MAX_BYTES. */
export const DatasetTooLarge = defineError('DATASET_TOO_LARGE', 413)
/** The content is none of CSV, JSON array, NDJSON or Parquet; carries `accepted`. */
export const UnsupportedDatasetFormat = defineError('UNSUPPORTED_DATASET_FORMAT', 415)
/** The request is not multipart/form-data. */
export const DatasetUploadNotMultipart = defineError('UNSUPPORTED_MEDIA_TYPE', 415)
/** The file was read but its lines do not make a dataset; carries `bad_lines` and `bad_line_count`. */
export const DatasetImportFailed = defineError('DATASET_IMPORT_FAILED', 422)
/** The dataset is still importing or its import failed: it has no rows to read yet. */
export const DatasetNotReady = defineError('DATASET_NOT_READY', 409)
/** An opaque cursor that this dataset and query did not issue. */
export const InvalidCursor = defineError('INVALID_CURSOR', 422)
