import type { OrderStatus } from './types.js'

export const ORDER_STATUSES: readonly OrderStatus[] = [
  'pending',
  'processing',
  'shipped',
  'delivered',
  'cancelled',
]

/**
 * The order lifecycle as the service enforces it (it documents the same graph on
 * POST /v1/orders/{id}/status): the console offers only these moves, the service decides.
 */
export const NEXT_STATUSES: Record<OrderStatus, readonly OrderStatus[]> = {
  pending: ['processing', 'cancelled'],
  processing: ['shipped', 'cancelled'],
  shipped: ['delivered'],
  delivered: [],
  cancelled: [],
}
