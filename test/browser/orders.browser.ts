import { beforeAll, describe, expect, it } from 'vitest'
import { injectAs, unique } from '../helpers.js'
import { seriousViolations, signIn, startConsole } from './harness.js'

const h = startConsole()

let productName: string
let customerName: string

beforeAll(async () => {
  const asAdmin = injectAs(h.t, h.users.admin)
  productName = `Console lamp ${unique()}`
  customerName = `Console customer ${unique()}`
  const product = await asAdmin({
    method: 'POST',
    url: '/v1/products',
    payload: { sku: `LAMP-${unique()}`, name: productName, price: '12.50', stock: 7 },
  })
  expect(product.statusCode).toBe(201)
  const customer = await asAdmin({
    method: 'POST',
    url: '/v1/customers',
    payload: { name: customerName, email: `${unique().toLowerCase()}@example.com` },
  })
  expect(customer.statusCode).toBe(201)
})

describe('the console at /console', () => {
  it('serves its page under a policy that allows only its own scripts and styles', async () => {
    const response = await fetch(`${h.baseUrl}/console/orders/anything`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/text\/html/)
    const policy = response.headers.get('content-security-policy') ?? ''
    expect(policy).toContain("script-src 'self'")
    expect(policy).toContain("style-src 'self'")
    expect(policy).not.toContain('unsafe-inline')
    const html = await response.text()
    // No inline script or style: every script and stylesheet is a file of its own.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
    expect(html).not.toMatch(/<style|style=/)
    const missing = await fetch(`${h.baseUrl}/console/assets/missing.js`)
    expect(missing.status).toBe(404)
  })
})

describe('orders in the console', () => {
  it('when a user places an order and moves it to delivered, then it shows each state and the admin sees its history', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.user)
    expect(await seriousViolations(page)).toEqual([])

    await page.getByRole('link', { name: 'Place an order' }).click()
    await page.getByLabel('Find a customer').fill(customerName)
    await page.getByRole('button', { name: /Choose a customer/ }).click()
    await page.getByRole('option', { name: new RegExp(customerName) }).click()
    await page.getByLabel('Find a product').fill(productName)
    await expect.poll(() => page.getByText('7 in stock').count()).toBe(1)
    await page.getByRole('button', { name: `Add ${productName}` }).click()
    await page.getByLabel(`Quantity of ${productName}`).fill('2')
    expect(await seriousViolations(page)).toEqual([])
    await page.getByRole('button', { name: 'Place order' }).click()

    const status = page.getByTestId('order-status')
    await expect.poll(() => status.textContent()).toBe('pending')
    // Only the moves the lifecycle allows are offered.
    const moves = page.getByRole('group', { name: 'Move the order' }).getByRole('button')
    expect(await moves.allTextContents()).toEqual(['Mark processing', 'Cancel order'])
    await page.getByRole('button', { name: 'Mark processing' }).click()
    await expect.poll(() => status.textContent()).toBe('processing')
    await page.getByRole('button', { name: 'Mark shipped' }).click()
    await expect.poll(() => status.textContent()).toBe('shipped')
    expect(await moves.allTextContents()).toEqual(['Mark delivered'])
    await page.getByRole('button', { name: 'Mark delivered' }).click()
    await expect.poll(() => status.textContent()).toBe('delivered')
    expect(await page.getByRole('group', { name: 'Move the order' }).count()).toBe(0)
    const orderUrl = page.url()

    const admin = await h.open()
    await signIn(admin, h.baseUrl, h.users.admin, new URL(orderUrl).pathname)
    const history = admin.getByTestId('order-history').getByRole('listitem')
    await expect
      .poll(() => history.allTextContents())
      .toEqual([
        expect.stringContaining('placed'),
        expect.stringContaining('pending → processing'),
        expect.stringContaining('processing → shipped'),
        expect.stringContaining('shipped → delivered'),
      ])
    expect(h.errorsOf(page)).toEqual([])
    expect(h.errorsOf(admin)).toEqual([])
  })

  it('when a product is saved with a malformed price, then the message lands on the price field', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.admin, '/console/products')
    await page.getByRole('button', { name: 'New product' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByLabel('SKU').fill(`BAD-${unique()}`)
    await dialog.getByLabel('Name').fill('Badly priced')
    await dialog.getByLabel('Price').fill('twelve')
    await dialog.getByRole('button', { name: 'Save' }).click()
    const price = dialog.getByLabel('Price')
    await expect.poll(() => price.getAttribute('aria-invalid')).toBe('true')
    // The field's accessible description is the service's message for `body.price`.
    const describedBy = (await price.getAttribute('aria-describedby')) ?? ''
    const described = await Promise.all(
      describedBy.split(' ').map((id) => dialog.locator(`[id="${id}"]`).textContent()),
    )
    expect(described.join(' ')).toMatch(/price|decimal|pattern|match/i)
    expect(await dialog.getByLabel('Name').getAttribute('aria-invalid')).not.toBe('true')
    expect(await seriousViolations(page)).toEqual([])
    // The browser logs the refused request itself; nothing else went wrong.
    expect(h.errorsOf(page)).toEqual([expect.stringContaining('422')])
  })

  it('when a user works with the keyboard alone, then signing in, moving between screens and choosing from a list all work', async () => {
    const page = await h.open()
    await page.goto(`${h.baseUrl}/console/`)
    // React renders after the load event: keys pressed before the form exists are lost.
    await page.getByLabel('Email').waitFor()
    await page.keyboard.press('Tab')
    await expect
      .poll(() => page.evaluate('document.activeElement?.getAttribute("type") ?? ""'))
      .toBe('email')
    await page.keyboard.type(h.users.user.email)
    await page.keyboard.press('Tab')
    await page.keyboard.type(h.users.user.password)
    await page.keyboard.press('Enter')
    await page.getByTestId('role').filter({ hasText: 'user' }).waitFor()
    const focused = () => page.evaluate('document.activeElement?.textContent ?? ""')
    for (let presses = 0; presses < 15 && (await focused()) !== 'Products'; presses++)
      await page.keyboard.press('Tab')
    await page.keyboard.press('Enter')
    await page.getByRole('heading', { level: 1, name: 'Products' }).waitFor()
    const sort = page.getByRole('button', { name: /\bSort\b/ })
    await sort.focus()
    await page.keyboard.press('ArrowDown')
    await page.getByRole('listbox').waitFor()
    // The list takes focus once open; a key pressed before that goes to the button.
    await expect
      .poll(() => page.evaluate('document.activeElement?.getAttribute("role") ?? ""'))
      .toBe('option')
    await page.keyboard.press('End')
    await page.keyboard.press('Enter')
    await expect.poll(() => sort.textContent()).toContain('Newest')
    expect(h.errorsOf(page)).toEqual([])
  })

  it('when a viewer signs in, then the role shows and no write button is offered', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.viewer)
    expect(await page.getByTestId('role').textContent()).toBe('viewer')
    expect(await page.getByRole('link', { name: 'Place an order' }).count()).toBe(0)
    await page.getByRole('link', { name: 'Products' }).click()
    await page.getByRole('heading', { name: 'Products' }).waitFor()
    await expect.poll(() => page.getByRole('row').count()).toBeGreaterThan(1)
    expect(await page.getByRole('button', { name: /New product|Edit|Deactivate/ }).count()).toBe(0)
    await page.getByRole('link', { name: 'Customers' }).click()
    await page.getByRole('heading', { name: 'Customers' }).waitFor()
    expect(await page.getByRole('button', { name: /New customer|Edit/ }).count()).toBe(0)
    expect(await page.getByRole('link', { name: 'Audit log' }).count()).toBe(0)
    expect(await seriousViolations(page)).toEqual([])
  })

  it('when an admin signs in on a phone, then every screen is reachable and passes axe, and signing out revokes the session', async () => {
    const page = await h.open({ width: 390, height: 844 })
    await signIn(page, h.baseUrl, h.users.admin)
    expect(await page.getByTestId('role').textContent()).toBe('admin')
    for (const screen of [
      'Orders',
      'Products',
      'Customers',
      'Models',
      'Datasets',
      'Jobs',
      'API keys',
      'Audit log',
    ]) {
      await page.getByRole('link', { name: screen, exact: true }).click()
      await page.getByRole('heading', { level: 1, name: screen }).waitFor()
      await page.waitForLoadState('networkidle')
      expect(await seriousViolations(page), screen).toEqual([])
    }
    const revoked = page.waitForResponse((r) => r.url().endsWith('/v1/auth/revoke'))
    await page.getByRole('button', { name: 'Sign out' }).click()
    expect((await revoked).status()).toBe(200)
    await page.getByRole('heading', { name: 'Sign in to OrderFlow' }).waitFor()
    // Nothing of the session was kept in the browser's storage.
    const stored = await page.evaluate(
      '[localStorage.length, sessionStorage.length, document.cookie]',
    )
    expect(stored).toEqual([0, 0, ''])
    expect(h.errorsOf(page)).toEqual([])
  })
})
