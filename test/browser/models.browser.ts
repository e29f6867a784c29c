import type { Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { injectAs, unique } from '../helpers.js'
import { registerVersion, shippedBytes, shippedCard } from '../models.js'
import { seriousViolations, signIn, startConsole } from './harness.js'

// Repeated inputs would be answered from the cache, without an inference call.
const h = startConsole({ PREDICTION_CACHE_TTL_MS: '0' })

const irisCard = shippedCard('iris')
const irisBytes = Buffer.from(shippedBytes('iris'))

interface FilePayload {
  name: string
  mimeType: string
  buffer: Buffer
}

const cardFile = (card: object): FilePayload => ({
  name: 'card.json',
  mimeType: 'application/json',
  buffer: Buffer.from(JSON.stringify(card)),
})
const graphFile: FilePayload = {
  name: 'model.onnx',
  mimeType: 'application/octet-stream',
  buffer: irisBytes,
}

/** Picks a file through the button's own file chooser, as a person would. */
async function choose(page: Page, button: string, file: FilePayload) {
  const chooser = page.waitForEvent('filechooser')
  await page.getByRole('button', { name: button }).click()
  await (await chooser).setFiles(file)
}

/** A version's row in the versions table. */
const versionRow = (page: Page, version: string) =>
  page.getByRole('row').filter({ has: page.getByRole('cell', { name: version, exact: true }) })

describe('models in the console', () => {
  it('when an admin registers a model and uploads a second version, then the upload reaches 100 %, the version is listed, and it is activated and rolled back', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.admin, '/console/models')
    const name = `iris-${unique().toLowerCase()}`

    await choose(page, 'Choose a card', cardFile({ ...irisCard, name, version: '1.0.0' }))
    await choose(page, 'Choose a graph', graphFile)
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    // A new model's screen opens once it is registered.
    await page.getByRole('heading', { name, exact: true }).waitFor()
    await expect.poll(() => versionRow(page, '1.0.0').textContent()).toContain('active')

    // A card that is not JSON: the service's message lands on the card field.
    await choose(page, 'Choose a card', {
      name: 'card.json',
      mimeType: 'application/json',
      buffer: Buffer.from('{ not json'),
    })
    await choose(page, 'Choose a graph', graphFile)
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    const cardField = page.getByRole('group', { name: 'Model card' })
    await expect.poll(() => cardField.textContent()).toContain('must be JSON')

    await choose(page, 'Choose a card', cardFile({ ...irisCard, name, version: '2.0.0' }))
    await expect.poll(() => page.getByTestId('card-heading').textContent()).toContain('2.0.0')
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    await expect
      .poll(() => page.getByLabel('Model upload progress').getAttribute('value'))
      .toBe('1')
    await page
      .getByRole('status')
      .filter({ hasText: `Registered ${name} 2.0.0` })
      .waitFor()
    expect(await cardField.textContent()).not.toContain('must be JSON')
    // A later version waits for its activation.
    await page.getByRole('button', { name: 'Activate 2.0.0' }).waitFor()
    expect(await versionRow(page, '1.0.0').textContent()).toContain('active')
    expect(await seriousViolations(page)).toEqual([])

    await page.getByRole('button', { name: 'Activate 2.0.0' }).click()
    await page.getByRole('button', { name: 'Activate 1.0.0' }).waitFor()
    await expect.poll(() => versionRow(page, '2.0.0').textContent()).toContain('active')
    const served = async () =>
      (await injectAs(h.t, h.users.admin)({ url: `/v1/models/${name}` })).json().active_version
    expect(await served()).toBe('2.0.0')

    // Activating the older version is the roll-back.
    await page.getByRole('button', { name: 'Activate 1.0.0' }).click()
    await page.getByRole('button', { name: 'Activate 2.0.0' }).waitFor()
    expect(await served()).toBe('1.0.0')

    // The same version again: the service's conflict is shown as an alert.
    await page.getByRole('button', { name: 'Upload', exact: true }).click()
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/2\.0\.0/)
    expect(h.errorsOf(page)).toEqual([
      expect.stringContaining('422'),
      expect.stringContaining('409'),
    ])
  })

  it('when a viewer opens the models, then no upload form is offered: uploads are for admins', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.viewer, '/console/models')
    await page.getByRole('link', { name: 'iris', exact: true }).waitFor()
    expect(await page.getByRole('button', { name: 'Choose a card' }).count()).toBe(0)
    await page.getByRole('link', { name: 'iris', exact: true }).click()
    await page.getByRole('heading', { name: 'Try it' }).waitFor()
    expect(await page.getByRole('button', { name: 'Choose a card' }).count()).toBe(0)
    expect(h.errorsOf(page)).toEqual([])
  })

  it("when a model has served predictions, then its charts' figures are the stats route's, and they follow new predictions while the screen is open", async () => {
    // A model of this test's own: no other test moves its figures.
    const name = `iris-${unique().toLowerCase()}`
    await registerVersion(h.t, h.users.admin, { ...irisCard, name }, shippedBytes('iris'))
    const predict = async (n: number) => {
      for (let k = 0; k < n; k++) {
        const response = await injectAs(
          h.t,
          h.users.viewer,
        )({
          method: 'POST',
          url: `/v1/models/${name}/predict`,
          payload: {
            inputs: {
              sepal_length: 5 + k / 10,
              sepal_width: 3.5,
              petal_length: 1.4,
              petal_width: 0.2,
            },
          },
        })
        expect(response.statusCode, response.body).toBe(200)
      }
    }
    await predict(3)

    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.viewer, `/console/models/${name}`)
    await expect.poll(() => page.getByTestId('stats-requests').textContent()).toBe('3')
    const { totals } = (
      await injectAs(h.t, h.users.viewer)({ url: `/v1/models/${name}/stats` })
    ).json()
    expect(totals.requests).toBe(3)
    const shown = async (key: string) => page.getByTestId(`stats-${key}`).textContent()
    expect(await shown('p50')).toBe(`${totals.latency_ms.p50} ms`)
    expect(await shown('p95')).toBe(`${totals.latency_ms.p95} ms`)
    expect(await shown('p99')).toBe(`${totals.latency_ms.p99} ms`)
    expect(await shown('batches')).toBe(String(totals.batches))
    expect(await shown('batch-max')).toBe(String(totals.batch_size.max))
    expect(Number(await shown('batches'))).toBeGreaterThan(0)
    // Each chart draws its series as a line from the same windows.
    for (const chart of ['Request rate', 'Latency', 'Batch size']) {
      const figure = page.getByRole('figure', { name: new RegExp(chart) })
      expect(await figure.locator('path').first().getAttribute('d')).toMatch(/^M/)
    }
    expect(await seriousViolations(page)).toEqual([])

    // The open screen asks again on its own.
    await predict(2)
    await expect.poll(() => page.getByTestId('stats-requests').textContent()).toBe('5')
    expect(h.errorsOf(page)).toEqual([])
  })
})
