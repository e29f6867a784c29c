import { type FormEvent, useRef, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { Link, useLocation } from 'wouter'
import { Choice, TextInput } from '../components/fields.js'
import { fieldErrorsOf, ProblemAlert } from '../components/problem-alert.js'
import { ScrollRegion } from '../components/scroll-region.js'
import { formatBytes, formatPercent, formatTime } from '../lib/format.js'
import { usePermissions, useSession } from '../lib/session.js'
import type { Model } from '../lib/types.js'
import { useAction } from '../lib/use-action.js'
import { useLoad } from '../lib/use-load.js'
import { ImagePredictForm } from './image-predict.js'
import { ModelStatsPanel } from './model-stats.js'
import { ModelUploadForm } from './model-upload.js'

type Card = NonNullable<Model['card']>
type CardInput = Card['inputs'][number] & {
  name: string
  type: 'number' | 'integer' | 'category'
  description?: string
  unit?: string
  categories?: string[]
  default?: number | string
  minimum?: number
  maximum?: number
  required?: boolean
}

export function ModelScreen({ params }: { params: { name: string } }) {
  const { api } = useSession()
  const can = usePermissions()
  const [, navigate] = useLocation()
  const model = useLoad(
    async (signal) =>
      (await api.GET('/v1/models/{name}', { params: { path: { name: params.name } }, signal }))
        .data,
    [api, params.name],
  )
  const activation = useAction()

  const activate = (version: string) =>
    activation.run(async () => {
      await api.POST('/v1/models/{name}/versions/{version}/activate', {
        params: { path: { name: params.name, version } },
      })
      model.reload()
    })

  if (model.error) return <ProblemAlert error={model.error} />
  if (!model.data) return <p aria-busy="true">Loading…</p>
  const m = model.data
  return (
    <section aria-labelledby="model-title">
      <p>
        <Link href="/models">← Models</Link>
      </p>
      <h1 id="model-title">{m.name}</h1>
      {m.card ? <ModelCard card={m.card} /> : null}
      <h2>Versions</h2>
      <ProblemAlert error={activation.error} />
      <ScrollRegion label="Versions">
        <table>
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Size</th>
              <th scope="col">Registered</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {m.versions.map((version) => (
              <tr key={version.version}>
                <td>{version.version}</td>
                <td>{formatBytes(version.size_bytes)}</td>
                <td>{formatTime(version.created_at)}</td>
                <td>
                  {version.active ? (
                    <strong>active</strong>
                  ) : can.manageModels ? (
                    // Activating an older version is the roll-back.
                    <Button onPress={() => void activate(version.version)}>
                      Activate {version.version}
                    </Button>
                  ) : (
                    'inactive'
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollRegion>
      {can.manageModels ? (
        <ModelUploadForm
          title="Upload a new version"
          model={m.name}
          onUploaded={(uploaded) =>
            uploaded.name === m.name ? model.reload() : navigate(`/models/${uploaded.name}`)
          }
        />
      ) : null}
      {m.task === 'text-generation' ? (
        <GenerateForm model={m.name} />
      ) : m.card && readsPictures(m.card) ? (
        <ImagePredictForm model={m.name} />
      ) : m.card ? (
        <TryItForm model={m.name} card={m.card} />
      ) : null}
      {/* Generation streams tokens; its requests are not among the serving figures. */}
      {m.task === 'text-generation' ? null : <ModelStatsPanel model={m.name} />}
    </section>
  )
}

/** An image model's card declares how it reads a picture (`image`) instead of named inputs. */
function readsPictures(card: Card): boolean {
  return Boolean((card as { image?: unknown }).image)
}

function ModelCard({ card }: { card: Card }) {
  const metrics = Object.entries(card.metrics as Record<string, unknown>).filter(
    ([, value]) => typeof value === 'number',
  ) as [string, number][]
  return (
    <div className="card">
      <h2>Model card</h2>
      <p>{card.description}</p>
      <dl className="facts">
        <dt>Version</dt>
        <dd>{card.version}</dd>
        <dt>Task</dt>
        <dd>{card.task}</dd>
        {metrics.map(([name, value]) => (
          <div key={name} className="fact">
            <dt>{name}</dt>
            <dd>{value < 1 && value > 0 ? formatPercent(value) : value}</dd>
          </div>
        ))}
      </dl>
    </div>
  )
}

/** A form generated from the card's declared inputs: one field per input, typed as declared. */
function TryItForm({ model, card }: { model: string; card: Card }) {
  const { api } = useSession()
  const inputs = card.inputs as CardInput[]
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(inputs.map((input) => [input.name, String(input.default ?? '')])),
  )
  const [result, setResult] = useState<{
    prediction: string | number
    probabilities?: Record<string, number>
  } | null>(null)
  const [error, setError] = useState<unknown>(null)

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    setResult(null)
    const body: Record<string, string | number> = {}
    for (const input of inputs) {
      const raw = values[input.name] ?? ''
      if (raw === '') continue
      // A number that does not parse goes as typed: the service names the field it refuses.
      body[input.name] = input.type === 'category' || Number.isNaN(Number(raw)) ? raw : Number(raw)
    }
    try {
      const { data } = await api.POST('/v1/models/{name}/predict', {
        params: { path: { name: model } },
        body: { inputs: body },
      })
      setResult(data)
    } catch (failure) {
      setError(failure)
    }
  }
  const errors = fieldErrorsOf(error)
  return (
    <div className="card">
      <h2>Try it</h2>
      <Form onSubmit={submit} className="grid-form">
        {inputs.map((input) =>
          input.type === 'category' && input.categories ? (
            <Choice
              key={input.name}
              label={input.name}
              name={input.name}
              value={values[input.name] ?? ''}
              options={[
                { id: '', label: input.required ? 'Choose…' : 'Default' },
                ...input.categories.map((c) => ({ id: c, label: c })),
              ]}
              onChange={(value) => setValues((v) => ({ ...v, [input.name]: value }))}
              error={errors[`inputs.${input.name}`]}
            />
          ) : (
            <TextInput
              key={input.name}
              label={input.unit ? `${input.name} (${input.unit})` : input.name}
              name={input.name}
              inputMode={input.type === 'integer' ? 'numeric' : 'decimal'}
              value={values[input.name] ?? ''}
              onChange={(value) => setValues((v) => ({ ...v, [input.name]: value }))}
              error={errors[`inputs.${input.name}`]}
              description={input.description}
            />
          ),
        )}
        <Button type="submit" className="primary">
          Predict
        </Button>
      </Form>
      {Object.keys(errors).length === 0 ? <ProblemAlert error={error} /> : null}
      {result ? (
        <output className="result" data-testid="prediction" aria-live="polite">
          Prediction: <strong>{String(result.prediction)}</strong>
          {result.probabilities ? (
            <ul>
              {Object.entries(result.probabilities).map(([label, p]) => (
                <li key={label}>
                  {label}: {formatPercent(p)}
                </li>
              ))}
            </ul>
          ) : null}
        </output>
      ) : null}
    </div>
  )
}

/** Streams a generation: tokens are appended as the service sends them. */
function GenerateForm({ model }: { model: string }) {
  const { client } = useSession()
  const [prompt, setPrompt] = useState('The shop')
  const [maxTokens, setMaxTokens] = useState('80')
  const [text, setText] = useState('')
  const [running, setRunning] = useState(false)
  const [error, setError] = useState<unknown>(null)
  const abort = useRef<AbortController | null>(null)

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setError(null)
    setText('')
    setRunning(true)
    const controller = new AbortController()
    abort.current = controller
    try {
      for await (const event of client.generate(
        model,
        { prompt, max_tokens: Number(maxTokens) },
        { signal: controller.signal },
      )) {
        if (event.type === 'token') setText((current) => current + event.text)
      }
    } catch (failure) {
      if (!controller.signal.aborted) setError(failure)
    } finally {
      setRunning(false)
    }
  }
  const errors = fieldErrorsOf(error)
  return (
    <div className="card">
      <h2>Generate text</h2>
      <Form onSubmit={submit} className="stack">
        <TextInput
          label="Prompt"
          name="prompt"
          multiline
          value={prompt}
          onChange={setPrompt}
          error={errors.prompt}
        />
        <TextInput
          label="Maximum tokens"
          name="max_tokens"
          inputMode="numeric"
          value={maxTokens}
          onChange={setMaxTokens}
          error={errors.max_tokens}
        />
        <div className="actions">
          <Button type="submit" className="primary" isDisabled={running}>
            Generate
          </Button>
          <Button isDisabled={!running} onPress={() => abort.current?.abort()}>
            Stop
          </Button>
        </div>
      </Form>
      {Object.keys(errors).length === 0 ? <ProblemAlert error={error} /> : null}
      <output className="generated" data-testid="generated" aria-live="polite" aria-busy={running}>
        {text}
      </output>
    </div>
  )
}
