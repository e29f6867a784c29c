import { afterAll, describe, expect, it } from 'vitest'
import { BROWSER_CLIENT, startTestProvider, type TestProvider } from '../oidc-provider.js'
import { startConsole } from './harness.js'

let provider: TestProvider

const h = startConsole(async (baseUrl) => {
  provider = await startTestProvider({ redirectUri: `${baseUrl}/v1/auth/oidc/test/callback` })
  return {
    PUBLIC_URL: baseUrl,
    OIDC_PROVIDERS: JSON.stringify([
      {
        name: 'test',
        display_name: 'Test provider',
        issuer: provider.issuer,
        client_id: BROWSER_CLIENT.id,
        scopes: ['openid', 'email', 'profile', 'roles'],
        role_claim: 'roles',
        role_map: { 'OrderFlow.Viewer': 'viewer' },
      },
    ]),
    OIDC_TEST_CLIENT_SECRET: BROWSER_CLIENT.secret,
  }
})
afterAll(() => provider?.close())

describe('single sign-on from the console', () => {
  it('when a person signs in with the provider, then the console comes back signed in with the mapped role and no code left in the address', async () => {
    const login = `console-person-${Date.now().toString(36)}`
    provider.addAccount(login, {
      sub: login,
      email: `${login}@example.com`,
      email_verified: true,
      name: 'Console Person',
      roles: ['OrderFlow.Viewer'],
    })
    const page = await h.open()

    await page.goto(`${h.baseUrl}/console/`)
    await page.getByRole('button', { name: 'Sign in with Test provider' }).click()
    // The provider's own (development) login and consent pages.
    await page.locator('input[name="login"]').fill(login)
    await page.locator('input[name="password"]').fill('any')
    await page.getByRole('button', { name: 'Sign-in' }).click()
    await page.getByRole('button', { name: 'Continue' }).click()

    await page
      .getByTestId('caller')
      .filter({ hasText: `${login}@example.com` })
      .waitFor()
    await expect.poll(() => page.getByTestId('role').textContent()).toBe('viewer')
    expect(new URL(page.url()).search).toBe('')
  })

  it('when the page comes back with a code this tab did not ask for, then it says so and stays signed out', async () => {
    const page = await h.open()

    await page.goto(`${h.baseUrl}/console/?code=forged-code&state=forged-state`)

    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toContain('not started in this tab')
    expect(new URL(page.url()).search).toBe('')
    expect(await page.getByTestId('caller').count()).toBe(0)
    expect(h.errorsOf(page)).toEqual([])
  })
})
