// The image's HEALTHCHECK: exit 0 when /health answers 200 within the timeout, 1 otherwise.
// Node's own http client, because the slim base image has no curl or wget.
import { request } from 'node:http'

// The port comes as an argument (the worker's) or from PORT, as the API reads it.
const port = Number(process.argv[2] || process.env.PORT || 8000)
const timeoutMs = 2000

const req = request(
  { host: '127.0.0.1', port, path: '/health', method: 'GET', timeout: timeoutMs },
  (res) => {
    res.resume()
    process.exit(res.statusCode === 200 ? 0 : 1)
  },
)
req.on('timeout', () => req.destroy(new Error('timed out')))
req.on('error', () => process.exit(1))
req.end()
