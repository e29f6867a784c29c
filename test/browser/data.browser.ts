import { readFile } from 'node:fs/promises'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { unique } from '../helpers.js'
import { seriousViolations, signIn, startConsole } from './harness.js'

// Any upload past a few bytes imports in a job, so the test watches one run.
const h = startConsole({ DATASET_INLINE_MAX_BYTES: '64' })

const IRIS_CSV = [
  'sepal_length,sepal_width,petal_length,petal_width',
  '5.1,3.5,1.4,0.2',
  '6.7,3.0,5.2,2.3',
  '5.9,3.0,4.2,1.5',
  '4.9,3.1,1.5,0.1',
].join('\n')

describe('datasets, jobs and models in the console', () => {
  it('when a user uploads a CSV, then the import job finishes, and a batch prediction over it can be downloaded', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.user, '/console/datasets')
    const name = `flowers ${unique()}`
    await page.locator('input[type="file"]').setInputFiles({
      name: 'flowers.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(IRIS_CSV),
    })
    await page.getByLabel('Name').fill(name)
    await page.getByRole('button', { name: 'Upload' }).click()
    await expect.poll(() => page.getByLabel('Upload progress').getAttribute('value')).toBe('1')
    await page.getByRole('link', { name: /^job / }).click()

    await expect
      .poll(() => page.getByTestId('job-status').textContent(), { timeout: 30_000 })
      .toBe('succeeded')
    // The status and the progress bar arrive as separate events: the bar catches up.
    await expect.poll(() => page.getByLabel('Job progress').getAttribute('value')).toBe('1')
    await page.getByRole('link', { name: 'the dataset' }).click()
    await expect.poll(() => page.getByTestId('dataset-status').textContent()).toBe('ready')
    await expect.poll(() => page.getByTestId('rows').getByRole('row').count()).toBe(5)
    expect(await seriousViolations(page)).toEqual([])

    // Filtered rows: the typed filter reaches the service.
    await page.getByRole('button', { name: /\bColumn\b/ }).click()
    await page.getByRole('option', { name: 'petal_length' }).click()
    await page.getByRole('button', { name: /\bOperator\b/ }).click()
    await page.getByRole('option', { name: 'gt', exact: true }).click()
    await page.getByLabel('Value').fill('4')
    await page.getByRole('button', { name: 'Apply' }).click()
    await expect.poll(() => page.getByTestId('rows').getByRole('row').count()).toBe(3)

    await page.getByRole('button', { name: /\bModel\b/ }).click()
    await page.getByRole('option', { name: 'iris' }).click()
    await page.getByRole('button', { name: 'Start batch prediction' }).click()
    await expect
      .poll(() => page.getByTestId('job-status').textContent(), { timeout: 30_000 })
      .toBe('succeeded')
    await page.getByRole('link', { name: 'the dataset' }).click()
    await expect.poll(() => page.getByTestId('dataset-status').textContent()).toBe('ready')
    const downloading = page.waitForEvent('download')
    await page.getByRole('button', { name: 'Download CSV' }).click()
    const file = await (await downloading).path()
    const csv = await readFile(file, 'utf8')
    const [header, ...lines] = csv.trim().split('\n')
    expect(header).toContain('prediction')
    expect(lines).toHaveLength(4)
    expect(csv).toMatch(/setosa/)
    expect(csv).toMatch(/virginica/)
    expect(h.errorsOf(page)).toEqual([])
  })

  it('when a viewer tries the iris model, then the form built from its card answers a class', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.viewer, '/console/models/iris')
    await page.getByRole('heading', { name: 'Try it' }).waitFor()
    // No write button for a viewer, but predictions are open to every role.
    expect(await page.getByRole('button', { name: /^Activate/ }).count()).toBe(0)
    for (const [input, value] of [
      ['sepal_length', '5.1'],
      ['sepal_width', '3.5'],
      ['petal_length', '1.4'],
      ['petal_width', '0.2'],
    ] as const) {
      await page.getByLabel(`${input} (cm)`).fill(value)
    }
    await page.getByRole('button', { name: 'Predict' }).click()
    await expect.poll(() => page.getByTestId('prediction').textContent()).toContain('setosa')
    expect(await seriousViolations(page)).toEqual([])
    expect(h.errorsOf(page)).toEqual([])
  })

  it('when a viewer chooses a picture for the shapes model, then its most probable label is shown', async () => {
    const golden = JSON.parse(
      await readFile(new URL('../../models/shapes.golden.json', import.meta.url), 'utf8'),
    )
    const card = JSON.parse(
      await readFile(new URL('../../models/shapes.card.json', import.meta.url), 'utf8'),
    )
    const { input, output } = golden.cases[0]
    const labels: string[] = card.outputs.find(
      (entry: { name: string }) => entry.name === 'probabilities',
    ).labels
    const picture = await sharp(Buffer.from(input.rgb_base64, 'base64'), {
      raw: { width: input.width, height: input.height, channels: 3 },
    })
      .png()
      .toBuffer()
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.viewer, '/console/models/shapes')
    await page.getByRole('heading', { name: 'Classify a picture' }).waitFor()
    // The file button's input: what a drop and a keyboard choice both end in.
    await page
      .locator('input[type=file]')
      .setInputFiles({ name: 'shape.png', mimeType: 'image/png', buffer: picture })
    await expect
      .poll(() => page.getByTestId('image-prediction').textContent())
      .toContain(`Prediction: ${labels[output.label]}`)
    expect(await seriousViolations(page)).toEqual([])
    expect(h.errorsOf(page)).toEqual([])
  })

  it('when a user generates text, then tokens arrive one after another until the answer is whole', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.user, '/console/models/tiny-text')
    await page.getByLabel('Maximum tokens').fill('60')
    // Every length the output passes through, as the page shows it.
    await page.getByTestId('generated').evaluate((output) => {
      // Runs in the page, whose DOM this file's compiler settings do not describe.
      const { MutationObserver } = globalThis as unknown as {
        MutationObserver: new (
          callback: () => void,
        ) => { observe(node: unknown, options: Record<string, boolean>): void }
      }
      const seen: number[] = []
      new MutationObserver(() => seen.push(output.textContent?.length ?? 0)).observe(output, {
        childList: true,
        characterData: true,
        subtree: true,
      })
      Object.assign(output, { seen })
    })
    await page.getByRole('button', { name: 'Generate' }).click()
    await expect.poll(() => page.getByTestId('generated').getAttribute('aria-busy')).toBe('false')
    const text = await page.getByTestId('generated').textContent()
    expect(text?.length).toBeGreaterThan(10)
    const seen = (await page
      .getByTestId('generated')
      .evaluate((output) => (output as unknown as { seen: number[] }).seen)) as number[]
    // Partial answers were shown on the way. How many depends on how many tokens arrive
    // between two renders, which a busy machine raises: two are enough to tell a stream
    // from an answer shown whole at the end.
    const partial = new Set(seen.filter((length) => length > 0 && length < (text?.length ?? 0)))
    expect(partial.size).toBeGreaterThanOrEqual(2)
    expect(h.errorsOf(page)).toEqual([])
  })

  it('when a user creates an API key, then it is shown once and works, and once revoked it no longer does', async () => {
    const page = await h.open()
    await signIn(page, h.baseUrl, h.users.user, '/console/api-keys')
    const name = `laptop ${unique()}`
    await page.getByLabel('Key name').fill(name)
    await page.getByRole('button', { name: 'Create key' }).click()
    const key = (await page.getByTestId('new-key').textContent()) ?? ''
    expect(key).toMatch(/^ofk_/)
    const asKey = () => fetch(`${h.baseUrl}/v1/users/me`, { headers: { 'x-api-key': key } })
    expect((await asKey()).status).toBe(200)
    await page.getByRole('button', { name: 'Done' }).click()
    expect(await page.getByTestId('new-key').count()).toBe(0)
    expect(await seriousViolations(page)).toEqual([])

    await page.getByRole('button', { name: `Revoke ${name}` }).click()
    await expect.poll(() => page.getByRole('button', { name: `Revoke ${name}` }).count()).toBe(0)
    expect((await asKey()).status).toBe(401)
    expect(h.errorsOf(page)).toEqual([])
  })
})
