import { defineError } from '../../shared/errors.js'

export const ProductNotFound = defineError('PRODUCT_NOT_FOUND', 404)
export const ProductSkuTaken = defineError('PRODUCT_SKU_TAKEN', 409)
