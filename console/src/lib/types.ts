import type { ResponseBody } from '@orderflow/client'

export type Me = ResponseBody<'/v1/users/me', 'get'>
export type Role = Me['role']
export type Order = ResponseBody<'/v1/orders/{id}', 'get'>
export type OrderStatus = Order['status']
export type OrderPage = ResponseBody<'/v1/orders', 'get'>
export type Product = ResponseBody<'/v1/products/{id}', 'get'>
export type Customer = ResponseBody<'/v1/customers/{id}', 'get'>
export type Dataset = ResponseBody<'/v1/datasets/{id}', 'get'>
export type Job = ResponseBody<'/v1/jobs/{id}', 'get'>
export type Model = ResponseBody<'/v1/models/{name}', 'get'>
export type ModelSummary = ResponseBody<'/v1/models', 'get'>[number]
export type ApiKey = ResponseBody<'/v1/api-keys', 'get'>['items'][number]
export type AuditEvent = ResponseBody<'/v1/audit-events', 'get'>['items'][number]
export type ModelStats = ResponseBody<'/v1/models/{name}/stats', 'get'>
