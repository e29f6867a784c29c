import { defineError } from '../../shared/errors.js'

export const ProductNotFound = defineError('PRODUCT_NOT_FOUND', 404)
export const ProductSkuTaken = defineError('PRODUCT_SKU_TAKEN', 409)
/** Ordered products stay for the orders' history; deactivate them instead. */
export const ProductInUse = defineError('PRODUCT_IN_USE', 409)
