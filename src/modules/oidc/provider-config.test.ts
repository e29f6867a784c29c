import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../config.js'
import { mapRole } from './provider-config.js'

const ENTRA = {
  name: 'entra',
  issuer: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0',
  client_id: '11111111-1111-1111-1111-111111111111',
  role_claim: 'roles',
  role_map: { 'OrderFlow.Admin': 'admin' },
}

function load(env: Record<string, string>) {
  return loadConfig({ NODE_ENV: 'test', PUBLIC_URL: 'https://orders.example.com', ...env }, null)
}

function problemsOf(env: Record<string, string>): string[] {
  try {
    load(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  throw new Error('the configuration was accepted')
}

describe('OIDC_PROVIDERS', () => {
  it('when a provider is valid, then its defaults are filled in and its secret comes from OIDC_<NAME>_CLIENT_SECRET', () => {
    const config = load({
      OIDC_PROVIDERS: JSON.stringify([ENTRA]),
      OIDC_ENTRA_CLIENT_SECRET: 'the secret',
    })

    expect(config.oidcProviders).toEqual([
      {
        ...ENTRA,
        scopes: ['openid', 'email', 'profile'],
        email_claim: 'email',
        name_claim: 'name',
        link_verified_email: false,
        algorithms: ['RS256'],
        login: true,
        clientSecret: 'the secret',
      },
    ])
  })

  it('when the providers come from OIDC_PROVIDERS_FILE, then the file is read', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'orderflow-oidc-')), 'providers.json')
    writeFileSync(file, JSON.stringify([{ ...ENTRA, name: 'from-file' }]))

    expect(load({ OIDC_PROVIDERS_FILE: file }).oidcProviders[0]?.name).toBe('from-file')
  })

  it('when the file cannot be read or both keys are set, then start-up stops naming the problem', () => {
    expect(problemsOf({ OIDC_PROVIDERS_FILE: '/nonexistent/providers.json' })).toEqual([
      'OIDC_PROVIDERS_FILE="/nonexistent/providers.json" cannot be read: ENOENT',
    ])
    expect(
      problemsOf({ OIDC_PROVIDERS: '[]', OIDC_PROVIDERS_FILE: '/nonexistent/providers.json' }),
    ).toEqual(['OIDC_PROVIDERS and OIDC_PROVIDERS_FILE are exclusive: set one'])
  })

  it('when the JSON is malformed, then start-up stops saying so', () => {
    expect(problemsOf({ OIDC_PROVIDERS: '[{' })[0]).toMatch(/^OIDC_PROVIDERS is not valid JSON/)
  })

  it('when a client secret is put in the JSON, then it is refused without echoing it', () => {
    const problems = problemsOf({
      OIDC_PROVIDERS: JSON.stringify([{ ...ENTRA, client_secret: 'leaked-secret-value' }]),
    })

    expect(problems).toEqual([
      'OIDC_PROVIDERS.0.client_secret is not allowed: put the secret in the environment (OIDC_<NAME>_CLIENT_SECRET)',
    ])
    expect(problems.join()).not.toContain('leaked-secret-value')
  })

  it('when fields are wrong, then every problem is named with its place', () => {
    const problems = problemsOf({
      OIDC_PROVIDERS: JSON.stringify([
        { ...ENTRA, name: 'Bad Name', algorithms: ['none'], default_role: 'root' },
        { ...ENTRA, issuer: 'not a url', scopes: ['email'] },
      ]),
    })

    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^OIDC_PROVIDERS\.0\.name must match pattern/),
        expect.stringMatching(/^OIDC_PROVIDERS\.0\.algorithms\.0 must be equal to one of/),
        expect.stringMatching(/^OIDC_PROVIDERS\.0\.default_role must be equal to one of/),
        expect.stringMatching(/^OIDC_PROVIDERS\.1\.issuer must match format "uri"/),
        expect.stringMatching(/^OIDC_PROVIDERS\.1\.scopes must contain/),
      ]),
    )
  })

  it('when two providers share a name, a role_map has no role_claim, or PUBLIC_URL is missing, then start-up stops', () => {
    const { role_claim: _, ...noClaim } = ENTRA
    const problems = (() => {
      try {
        loadConfig({ NODE_ENV: 'test', OIDC_PROVIDERS: JSON.stringify([ENTRA, noClaim]) }, null)
      } catch (error) {
        return (error as ConfigError).problems
      }
      return []
    })()

    expect(problems).toEqual([
      'OIDC_PROVIDERS names entra twice',
      'OIDC_PROVIDERS entra: role_map needs role_claim',
      'PUBLIC_URL must be set with OIDC_PROVIDERS (providers redirect back to it)',
    ])
  })

  it('when production runs single sign-on over plain http, then start-up stops', () => {
    const problems = (() => {
      try {
        loadConfig(
          {
            NODE_ENV: 'production',
            JWT_SECRET: 'x'.repeat(40),
            PUBLIC_URL: 'http://orders.example.com',
            OIDC_PROVIDERS: JSON.stringify([ENTRA]),
          },
          null,
        )
      } catch (error) {
        return (error as ConfigError).problems
      }
      return []
    })()

    expect(problems).toContain(
      'PUBLIC_URL must be https:// in production when OIDC_PROVIDERS is set',
    )
  })

  it('when a front-end redirect URI is not an absolute http(s) URL, then start-up stops', () => {
    expect(
      problemsOf({ OIDC_CLIENT_REDIRECT_URIS: 'https://ok.example.com/cb,/relative' }),
    ).toEqual([
      'OIDC_CLIENT_REDIRECT_URIS entry "/relative" is invalid: expected an absolute http(s) URL without a fragment',
    ])
  })
})

describe('role mapping', () => {
  const mapping = {
    role_claim: 'groups',
    role_map: { 'g-admins': 'admin', 'g-staff': 'user', 'g-readers': 'viewer' } as const,
  }

  it('when several values map, then the most privileged role wins', () => {
    expect(mapRole({ groups: ['g-readers', 'g-admins'] }, mapping)).toBe('admin')
  })

  it('when the claim is a single string, then it is mapped too', () => {
    expect(mapRole({ groups: 'g-staff' }, mapping)).toBe('user')
  })

  it('when nothing maps, then the default role, or none', () => {
    expect(mapRole({ groups: ['other'] }, mapping)).toBeUndefined()
    expect(mapRole({}, { ...mapping, default_role: 'viewer' })).toBe('viewer')
  })

  it('when a value names an object property such as __proto__ or toString, then it maps to nothing', () => {
    expect(mapRole({ groups: ['__proto__', 'toString', 'constructor'] }, mapping)).toBeUndefined()
  })
})
