import { defineError } from '../../shared/errors.js'

export const CustomerNotFound = defineError('CUSTOMER_NOT_FOUND', 404)
export const CustomerEmailTaken = defineError('CUSTOMER_EMAIL_TAKEN', 409)
/** Customers with orders stay so the orders keep their owner; deactivate them instead. */
export const CustomerHasOrders = defineError('CUSTOMER_HAS_ORDERS', 409)
