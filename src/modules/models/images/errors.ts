import { defineError } from '../../../shared/errors.js'

/** Not a JPEG, PNG or WebP file by its first bytes, whatever its declared type or name. */
export const UnsupportedImageType = defineError('UNSUPPORTED_IMAGE_TYPE', 415)
/** The upload is larger than IMAGE_MAX_BYTES. */
export const ImageTooLarge = defineError('IMAGE_TOO_LARGE', 413)
/** The header declares more pixels than IMAGE_MAX_PIXELS: refused before decoding. */
export const ImageTooManyPixels = defineError('IMAGE_TOO_MANY_PIXELS', 413)
/** The file starts like an image but does not decode: truncated or corrupt. */
export const ImageUnreadable = defineError('IMAGE_UNREADABLE', 422)
