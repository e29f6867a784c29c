import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, onTestFailed } from 'vitest'
import type { Role } from '../../src/shared/caller.js'
import { createTestUser, type TestApp, type TestUser } from '../helpers.js'
import { buildJobsTestApp } from '../jobs.js'

const require = createRequire(import.meta.url)
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')
/** Debian's package; CHROMIUM_PATH points elsewhere where it lives elsewhere. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
/** Where a failing test leaves a screenshot of the page it was on. */
export const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'browser')

export interface ConsoleHarness {
  t: TestApp
  baseUrl: string
  browser: Browser
  users: Record<Role, TestUser>
  /** A fresh page (its own context: no state shared between tests) watched for errors. */
  open(options?: { width?: number; height?: number }): Promise<Page>
  /** What `page` logged as errors so far: console errors (CSP violations among them), uncaught exceptions. */
  errorsOf(page: Page): string[]
}

/** A loopback port free now, for a service whose settings must name its own address. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * One service and one browser for the calling test file. Every page opened records its
 * console errors, failed requests and uncaught exceptions; a failing test leaves a
 * screenshot of every page it opened under test-artifacts/browser/. `env` may be a function
 * of the service's base URL (single sign-on needs PUBLIC_URL): it is then chosen first.
 */
export function startConsole(
  env: Record<string, string> | ((baseUrl: string) => Promise<Record<string, string>>) = {},
): ConsoleHarness {
  const harness = {} as ConsoleHarness
  const errors = new WeakMap<Page, string[]>()
  const contexts: BrowserContext[] = []

  // Uploads wait here for their import job, which a worker may run (services mode).
  const dataDir = mkdtempSync(join(tmpdir(), 'orderflow-console-'))

  beforeAll(async () => {
    // A database of its own (the shipped models' activation is database-wide state) and,
    // in services mode, a worker running the jobs as `npm run worker` would.
    const port = typeof env === 'function' ? await freePort() : 0
    harness.t = await buildJobsTestApp({
      LOG_LEVEL: 'warn',
      MODELS_REGISTER_SHIPPED: 'true',
      DATA_DIR: dataDir,
      ...(typeof env === 'function' ? await env(`http://127.0.0.1:${port}`) : env),
    })
    await harness.t.app.listen({ host: '127.0.0.1', port })
    const address = harness.t.app.server.address()
    if (!address || typeof address === 'string') throw new Error('no port')
    harness.baseUrl = `http://127.0.0.1:${address.port}`
    harness.users = {
      admin: await createTestUser(harness.t, 'admin'),
      user: await createTestUser(harness.t, 'user'),
      viewer: await createTestUser(harness.t, 'viewer'),
    }
    harness.browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Root in CI: Chromium's sandbox needs user namespaces that containers often lack.
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    })
  })

  afterAll(async () => {
    await harness.browser?.close()
    await harness.t?.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  harness.open = async ({ width = 1280, height = 900 } = {}) => {
    const context = await harness.browser.newContext({
      viewport: { width, height },
      acceptDownloads: true,
    })
    contexts.push(context)
    const page = await context.newPage()
    const logged: string[] = []
    errors.set(page, logged)
    page.on('console', (message) => {
      if (message.type() === 'error') logged.push(`console: ${message.text()}`)
    })
    page.on('pageerror', (error) => logged.push(`page: ${error.message}`))
    onTestFailed(async ({ task }) => {
      mkdirSync(ARTIFACTS, { recursive: true })
      const name = task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 80)
      await page
        .screenshot({ path: join(ARTIFACTS, `${name}-${contexts.length}.png`), fullPage: true })
        .catch(() => {})
    })
    return page
  }
  harness.errorsOf = (page) => errors.get(page) ?? []
  return harness
}

/** Signs in through the console's own form and waits for the caller's role to show. */
export async function signIn(page: Page, baseUrl: string, user: TestUser, path = '/console/') {
  await page.goto(`${baseUrl}${path}`)
  await page.getByLabel('Email').fill(user.email)
  await page.getByLabel('Password').fill(user.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('role').filter({ hasText: user.role }).waitFor()
}

/** axe-core's violations of impact serious or critical on the page as it is now. */
export async function seriousViolations(page: Page): Promise<string[]> {
  // Evaluated over the DevTools protocol, which the page's CSP does not govern: the
  // console's policy stays in force for everything else.
  await page.evaluate(AXE_SOURCE)
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } })
      .axe
    const result = await axe.run()
    return result.violations as { id: string; impact: string; nodes: { target: string[] }[] }[]
  })
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)
}
