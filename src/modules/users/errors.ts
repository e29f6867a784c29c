import { defineError } from '../../shared/errors.js'

export const UserNotFound = defineError('USER_NOT_FOUND', 404)
export const EmailTaken = defineError('EMAIL_TAKEN', 409)
export const SelfLockout = defineError('SELF_LOCKOUT', 409)
/** Orders keep their creator for the history; such a user is deactivated instead. */
export const UserHasOrders = defineError('USER_HAS_ORDERS', 409)
export const RegistrationClosed = defineError('REGISTRATION_CLOSED', 403)
