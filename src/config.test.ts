import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CONFIG_KEYS, ConfigError, DEVELOPMENT_JWT_SECRET, loadConfig } from './config.js'

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, null)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

describe('loadConfig', () => {
  it('gives every setting an embedded default', () => {
    const config = loadConfig({}, null)
    expect(config).toMatchObject({
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: 8000,
      DATA_DIR: './data',
      LOG_LEVEL: 'info',
      MIGRATE_ON_START: true,
      DOCS_ENABLED: true,
      trustProxy: false,
      corsOrigins: [],
    })
    expect(config.DATABASE_URL).toBeUndefined()
    expect(config.REDIS_URL).toBeUndefined()
  })

  it('types values read from the environment', () => {
    const config = loadConfig(
      { PORT: '9001', DOCS_ENABLED: 'false', CORS_ORIGINS: 'https://a.example, https://b.example' },
      null,
    )
    expect(config.PORT).toBe(9001)
    expect(config.DOCS_ENABLED).toBe(false)
    expect(config.corsOrigins).toEqual(['https://a.example', 'https://b.example'])
  })

  it('names every invalid variable and what it expects', () => {
    const problems = problemsOf({ PORT: 'eighty', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x' })
    expect(problems).toEqual(
      expect.arrayContaining([
        'PORT="eighty" is invalid: expected a TCP port',
        'LOG_LEVEL="loud" is invalid: expected one of fatal, error, warn, info, debug, trace, silent',
        'DATABASE_URL="mysql://x" is invalid: expected a postgres:// connection URL',
      ]),
    )
  })

  it('when a secret is invalid, then the error names the variable but never its value', () => {
    const problems = problemsOf({ ADMIN_EMAIL: 'a@example.com', ADMIN_PASSWORD: 'admin' })
    expect(problems).toEqual([
      'ADMIN_PASSWORD (value not shown) is invalid: expected 12-128 characters',
    ])
    const jwt = problemsOf({ NODE_ENV: 'production', JWT_SECRET: 'hunter2' }).join('\n')
    expect(jwt).toContain('JWT_SECRET')
    expect(jwt).not.toContain('hunter2')
  })

  it('when a connection URL is invalid, then the error shows it without its password', () => {
    const problems = problemsOf({
      DATABASE_URL: 'mysql://u:hunter2@db/x',
      REDIS_URL: 'http://:s3cret@cache:6379?password=s3cret',
    })
    expect(problems).toEqual([
      'DATABASE_URL="mysql://u:***@db/x" is invalid: expected a postgres:// connection URL',
      'REDIS_URL="http://:***@cache:6379/?password=***" is invalid: expected a redis:// connection URL',
    ])
    expect(problemsOf({ DATABASE_URL: 'u:hunter2@db' }).join()).not.toContain('hunter2')
  })

  it('rejects a port out of range', () => {
    expect(problemsOf({ PORT: '70000' })).toHaveLength(1)
  })

  it('when EMBEDDED_SHARED_BUFFERS_MB is unset, then it is 16; below 1 MB, then it is refused', () => {
    expect(loadConfig({}, null).EMBEDDED_SHARED_BUFFERS_MB).toBe(16)
    expect(loadConfig({ EMBEDDED_SHARED_BUFFERS_MB: '64' }, null).EMBEDDED_SHARED_BUFFERS_MB).toBe(
      64,
    )
    expect(problemsOf({ EMBEDDED_SHARED_BUFFERS_MB: '0' })).toEqual([
      'EMBEDDED_SHARED_BUFFERS_MB=0 is invalid: expected megabytes of PostgreSQL shared_buffers in embedded mode (1-4096)',
    ])
  })

  it.each([
    ['', false],
    ['2', 2],
    ['10.0.0.0/8, 192.168.1.1', ['10.0.0.0/8', '192.168.1.1']],
  ])('reads TRUST_PROXY=%j as %j', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }, null).trustProxy).toEqual(expected)
  })

  it.each(['true', '10.0.0.0/33', 'proxy.internal'])('refuses TRUST_PROXY=%s', (value) => {
    expect(problemsOf({ TRUST_PROXY: value })[0]).toMatch(/^TRUST_PROXY=/)
  })

  const strongSecret = 'x'.repeat(32)

  it('refuses insecure settings in production', () => {
    expect(
      problemsOf({ NODE_ENV: 'production', CORS_ORIGINS: '*', JWT_SECRET: strongSecret }),
    ).toEqual(['CORS_ORIGINS must list origins explicitly in production, not "*"'])
  })

  it.each([
    ['missing', {}, 'JWT_SECRET must be set in production (the development default is public)'],
    [
      'the development default',
      { JWT_SECRET: DEVELOPMENT_JWT_SECRET },
      'JWT_SECRET must be set in production (the development default is public)',
    ],
    [
      'shorter than 32 bytes',
      { JWT_SECRET: 'x'.repeat(31) },
      'JWT_SECRET must be at least 32 bytes in production',
    ],
  ])('refuses to start in production with a signing secret that is %s', (_case, env, problem) => {
    expect(problemsOf({ NODE_ENV: 'production', ...env })).toEqual([problem])
  })

  it('when JWT_PREVIOUS_SECRETS lists secrets, then they are read trimmed and without empty entries', () => {
    expect(
      loadConfig({ JWT_PREVIOUS_SECRETS: ' a-secret , ,another ' }, null).jwtPreviousSecrets,
    ).toEqual(['a-secret', 'another'])
    expect(loadConfig({}, null).jwtPreviousSecrets).toEqual([])
  })

  it('when a previous JWT secret is weak in production, then start-up is refused without echoing it', () => {
    const problems = problemsOf({
      NODE_ENV: 'production',
      JWT_SECRET: strongSecret,
      JWT_PREVIOUS_SECRETS: `${'y'.repeat(32)},short-old-secret,${DEVELOPMENT_JWT_SECRET}`,
    })
    expect(problems).toEqual([
      'JWT_PREVIOUS_SECRETS entry 2 must be at least 32 bytes and not the development default in production',
      'JWT_PREVIOUS_SECRETS entry 3 must be at least 32 bytes and not the development default in production',
    ])
    expect(problems.join()).not.toContain('short-old-secret')
    expect(
      problemsOf({
        NODE_ENV: 'production',
        JWT_SECRET: strongSecret,
        JWT_PREVIOUS_SECRETS: 'y'.repeat(32),
      }),
    ).toEqual([])
  })

  it('starts in production with a strong secret, and closes registration by default there', () => {
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: strongSecret }, null)
    expect(config.REGISTRATION_ENABLED).toBe(false)
    expect(loadConfig({}, null).REGISTRATION_ENABLED).toBe(true)
    expect(
      loadConfig(
        { NODE_ENV: 'production', JWT_SECRET: strongSecret, REGISTRATION_ENABLED: 'true' },
        null,
      ).REGISTRATION_ENABLED,
    ).toBe(true)
  })

  it('closes registration when password sign-in is off, and refuses opening it there', () => {
    expect(loadConfig({ PASSWORD_LOGIN_ENABLED: 'false' }, null).REGISTRATION_ENABLED).toBe(false)
    expect(problemsOf({ PASSWORD_LOGIN_ENABLED: 'false', REGISTRATION_ENABLED: 'true' })).toEqual([
      'REGISTRATION_ENABLED=true needs PASSWORD_LOGIN_ENABLED=true (sign-up makes a password account)',
    ])
  })

  it('prefixes the job queue like every other Redis key unless told otherwise', () => {
    expect(loadConfig({}, null).QUEUE_PREFIX).toBe('orderflow')
    expect(loadConfig({ REDIS_PREFIX: 'shop-eu' }, null).QUEUE_PREFIX).toBe('shop-eu')
    expect(loadConfig({ REDIS_PREFIX: 'shop-eu', QUEUE_PREFIX: 'q' }, null).QUEUE_PREFIX).toBe('q')
    expect(problemsOf({ REDIS_PREFIX: 'has space' })).toHaveLength(1)
  })

  it('wants ADMIN_EMAIL and ADMIN_PASSWORD together', () => {
    expect(problemsOf({ ADMIN_EMAIL: 'root@example.com' })).toEqual([
      'ADMIN_EMAIL and ADMIN_PASSWORD must be set together',
    ])
  })

  it('when an Idempotency-Key lease is not shorter than the key itself lives, then refuses it', () => {
    expect(problemsOf({ IDEMPOTENCY_TTL_S: '60', IDEMPOTENCY_LEASE_MS: '60000' })).toEqual([
      'IDEMPOTENCY_LEASE_MS must be shorter than IDEMPOTENCY_TTL_S',
    ])
    expect(problemsOf({ IDEMPOTENCY_TTL_S: '60', IDEMPOTENCY_LEASE_MS: '59000' })).toEqual([])
  })

  it('reads a .env file, with the real environment taking precedence', () => {
    const dir = mkdtempSync(join(tmpdir(), 'orderflow-env-'))
    const file = join(dir, '.env')
    writeFileSync(file, 'PORT=9100\nLOG_LEVEL=debug\n')
    const config = loadConfig({ LOG_LEVEL: 'warn' }, file)
    expect(config.PORT).toBe(9100)
    expect(config.LOG_LEVEL).toBe('warn')
  })

  it('is documented variable by variable in .env.example', () => {
    const documented = readFileSync('.env.example', 'utf8')
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => line.split('=')[0])
    expect(documented.sort()).toEqual([...CONFIG_KEYS].sort())
  })
})
