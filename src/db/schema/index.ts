export * from './products.js'
export * from './users.js'
