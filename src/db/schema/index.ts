export * from './products.js'
