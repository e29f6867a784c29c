import { spawnSync } from 'node:child_process'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import { type LoggerOptions, pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import type { Config } from '../config.js'
import { lazyRequestLogger, loggerOptions, RequestLogController } from './logging.js'

/** A pino logger configured as the service's, writing its lines parsed into `lines`. */
function collectingLogger(level: 'info' | 'warn') {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line))
      callback()
    },
  })
  const options = loggerOptions({ LOG_LEVEL: level } as Pick<Config, 'LOG_LEVEL'>) as LoggerOptions
  return { logger: pino(options, stream), lines }
}

/** An app wired as buildApp wires its logging, over a pino logger whose children are counted. */
async function appWithLogging(level: 'info' | 'warn') {
  const { logger, lines } = collectingLogger(level)
  const children = vi.spyOn(logger, 'child')
  const app = Fastify({
    loggerInstance: logger,
    logController: new RequestLogController(),
    childLoggerFactory: lazyRequestLogger,
    genReqId: (request) => String(request.headers['x-request-id']),
  })
  app.get('/quiet', async () => ({ ok: true }))
  app.get('/object', async (request) => {
    request.log.info({ detail: 'kept', token: 'secret' }, 'with an object')
    return { ok: true }
  })
  app.get('/message-and-error', async (request) => {
    request.log.warn('a message alone')
    request.log.error(new Error('boom'))
    return { ok: true }
  })
  app.get('/grandchild', async (request) => {
    request.log.child({ step: 'inner' }).info({ detail: 'deeper' }, 'from a grandchild')
    return { ok: true }
  })
  await app.ready()
  // Children made while the app was built are not the requests'.
  children.mockClear()
  const get = async (url: string) => {
    const response = await app.inject({ url, headers: { 'x-request-id': `req-${url.slice(1)}` } })
    expect(response.statusCode).toBe(200)
    return response
  }
  return { app, lines, children, get }
}

const linesOf = (lines: Record<string, unknown>[], id: string) =>
  lines.filter((line) => line.request_id === id)

describe('per-request logger', () => {
  it('when a request logs nothing itself, then no child logger is made and its request line names it', async () => {
    const { app, lines, children, get } = await appWithLogging('info')
    await get('/quiet')
    expect(children).not.toHaveBeenCalled()
    expect(linesOf(lines, 'req-quiet')).toEqual([
      expect.objectContaining({ msg: 'request completed', route: '/quiet', status_code: 200 }),
    ])
    await app.close()
  })

  it('when a handler logs an object, then its line carries the request id, redacted as before, without a child', async () => {
    const { app, lines, children, get } = await appWithLogging('info')
    await get('/object')
    expect(children).not.toHaveBeenCalled()
    const [line, requestLine] = linesOf(lines, 'req-object')
    expect(line).toMatchObject({ msg: 'with an object', detail: 'kept', token: '[REDACTED]' })
    expect(requestLine?.msg).toBe('request completed')
    await app.close()
  })

  it('when a handler logs a message alone or an error, then one child is made and every line names the request', async () => {
    const { app, lines, children, get } = await appWithLogging('info')
    await get('/message-and-error')
    expect(children).toHaveBeenCalledTimes(1)
    const mine = linesOf(lines, 'req-message-and-error')
    expect(mine.map((line) => line.msg)).toEqual(['a message alone', 'boom', 'request completed'])
    expect(mine[1]?.err).toMatchObject({ message: 'boom', type: 'Error' })
    await app.close()
  })

  it("when a handler makes a child of its logger, then the child's lines carry both bindings", async () => {
    const { app, lines, get } = await appWithLogging('info')
    await get('/grandchild')
    expect(linesOf(lines, 'req-grandchild')[0]).toMatchObject({
      msg: 'from a grandchild',
      step: 'inner',
      detail: 'deeper',
    })
    await app.close()
  })

  it('when the level is above info, then nothing is written and no child is made', async () => {
    const { app, lines, children, get } = await appWithLogging('warn')
    await get('/object')
    await get('/quiet')
    expect(children).not.toHaveBeenCalled()
    expect(lines).toEqual([])
    expect(app.log.level).toBe('warn')
    await app.close()
  })
})

describe('redaction', () => {
  it('when a line holds a credential at the top, one level down or at a header path, then only the credential is censored', () => {
    const { logger, lines } = collectingLogger('info')
    const body = { email: 'ada@example.com', password: 'hunter2', nested: { token: 'deep' } }
    logger.info(
      {
        token: 'top-secret',
        body,
        result: { access_token: 'a', refresh_token: 'r', api_key: 'k', expires_in: 900 },
        change: { current_password: 'old', new_password: 'new' },
        req: { headers: { authorization: 'Bearer x', cookie: 'c', 'x-api-key': 'k', host: 'h' } },
        list: [{ password: 'in-an-array' }],
        count: 3,
      },
      'probe',
    )
    expect(lines[0]).toMatchObject({
      token: '[REDACTED]',
      body: { email: 'ada@example.com', password: '[REDACTED]', nested: { token: 'deep' } },
      result: {
        access_token: '[REDACTED]',
        refresh_token: '[REDACTED]',
        api_key: '[REDACTED]',
        expires_in: 900,
      },
      change: { current_password: '[REDACTED]', new_password: '[REDACTED]' },
      req: {
        headers: {
          authorization: '[REDACTED]',
          cookie: '[REDACTED]',
          'x-api-key': '[REDACTED]',
          host: 'h',
        },
      },
      count: 3,
    })
    // Two levels down and inside arrays are out of reach, as they were for pino's `*.password`.
    expect(lines[0]?.list).toEqual([{ password: 'in-an-array' }])
    // The caller's objects are left as they were.
    expect(body.password).toBe('hunter2')
  })

  it('when an error carries a credential, then it is still logged as an error with the credential censored', () => {
    const { logger, lines } = collectingLogger('info')
    const error = Object.assign(new Error('refused'), { token: 'leaked', code: 'E_REFUSED' })
    logger.error({ err: error }, 'call failed')
    expect(lines[0]?.err).toMatchObject({
      type: 'Error',
      message: 'refused',
      code: 'E_REFUSED',
      token: '[REDACTED]',
      stack: expect.stringContaining('refused'),
    })
    expect(error.token).toBe('leaked')
  })
})

describe('the log destination', () => {
  // stdout is written asynchronously (pino's default destination): lines logged while a
  // write is in flight wait in memory and leave with the next one, and pino writes what
  // waits synchronously when the process exits.
  it.each([
    ['process.exit(1)', 'process.exit(1)'],
    ['an uncaught exception', "throw new Error('crash')"],
  ])(
    'when the process ends by %s right after logging, then every line reaches stdout in order',
    (_name, end) => {
      const count = 20_000
      const script = `
      const { default: Fastify } = await import('fastify')
      const { loggerOptions } = await import(${JSON.stringify(new URL('./logging.ts', import.meta.url).href)})
      const app = Fastify({ logger: loggerOptions({ LOG_LEVEL: 'info' }) })
      for (let i = 0; i < ${count}; i++) app.log.info({ line: i }, 'logged before the end')
      ${end}`
      const child = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '--eval', script],
        { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      )
      expect(child.status).toBe(1)
      const lines = child.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).line)
      expect(lines).toEqual(Array.from({ length: count }, (_, i) => i))
    },
  )
})
