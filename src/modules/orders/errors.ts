import { defineError } from '../../shared/errors.js'

/** Also what another user's order answers, so ids of others leak nothing. */
export const OrderNotFound = defineError('ORDER_NOT_FOUND', 404)
/** Carries `lines`: each short line with its path, product, requested and available units. */
export const OutOfStock = defineError('OUT_OF_STOCK', 409)
/** Carries `current_status`, `requested_status` and `allowed_next`. */
export const InvalidStatusTransition = defineError('INVALID_STATUS_TRANSITION', 409)
