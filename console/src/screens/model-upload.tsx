import { ApiError } from '@orderflow/client'
import { type FormEvent, useState } from 'react'
import { Button, Form } from 'react-aria-components'
import { FileField } from '../components/fields.js'
import { ProblemAlert } from '../components/problem-alert.js'
import { UploadProgress } from '../components/upload-progress.js'
import type { Model } from '../lib/types.js'
import { useUpload } from '../lib/use-upload.js'

interface CardHeading {
  name?: unknown
  version?: unknown
}

/**
 * The service's problems by upload part: `card` gathers the card's own paths
 * (`card.inputs[1].minimum`) and `onnx` the graph's, each told with where it points.
 */
function partErrors(error: unknown): { card?: string; onnx?: string } {
  if (!(error instanceof ApiError)) return {}
  const about = (part: 'card' | 'onnx') => {
    const messages = error.errors.flatMap(({ path, message }) => {
      const [first, ...rest] = path.replace(/^body\./, '').split('.')
      if (first !== part) return []
      return [rest.length > 0 ? `${rest.join('.')} ${message}` : message]
    })
    return messages.length > 0 ? messages.join('; ') : undefined
  }
  return { card: about('card'), onnx: about('onnx') }
}

/**
 * Registers a model version from its card (JSON) and graph (ONNX), with the upload's
 * progress. The card names the model: a new name registers a new model.
 */
export function ModelUploadForm(props: {
  title: string
  /** The model whose screen shows the form; a card naming another is pointed out. */
  model?: string
  onUploaded: (model: Model) => void
}) {
  const [card, setCard] = useState<File | null>(null)
  const [heading, setHeading] = useState<CardHeading | null>(null)
  const [onnx, setOnnx] = useState<File | null>(null)
  const [uploaded, setUploaded] = useState<string | null>(null)
  const upload = useUpload('/v1/models')

  const chooseCard = async (file: File | null) => {
    setCard(file)
    setHeading(null)
    if (!file) return
    try {
      setHeading(JSON.parse(await file.text()) as CardHeading)
    } catch {
      // Not JSON: the service says so on the card field when it is sent.
    }
  }

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    if (!card) return
    setUploaded(null)
    const form = new FormData()
    form.append('card', card)
    if (onnx) form.append('onnx', onnx)
    const model = await upload.send(form)
    if (!model) return
    setUploaded(`${model.name} ${String(heading?.version ?? '')}`.trim())
    props.onUploaded(model)
  }

  const errors = partErrors(upload.error)
  const named = typeof heading?.name === 'string' ? heading.name : null
  return (
    <Form onSubmit={submit} className="card stack" aria-label={props.title}>
      <h2>{props.title}</h2>
      <p className="hint">
        The model card (JSON) names the model and the version; the ONNX graph must match it.
      </p>
      <FileField
        label="Model card"
        choose="Choose a card"
        accept={['.json', 'application/json']}
        file={card}
        onSelect={(file) => void chooseCard(file)}
        error={errors.card}
      />
      {heading ? (
        <p className="hint" data-testid="card-heading">
          {named ?? 'unnamed'} {String(heading.version ?? '')}
          {props.model && named && named !== props.model
            ? ` — this card names another model: it registers a version of ${named}.`
            : null}
        </p>
      ) : null}
      <FileField
        label="ONNX graph"
        choose="Choose a graph"
        accept={['.onnx']}
        file={onnx}
        onSelect={setOnnx}
        error={errors.onnx}
      />
      <Button type="submit" className="primary" isDisabled={!card || upload.sending}>
        Upload
      </Button>
      <UploadProgress label="Model upload progress" progress={upload.progress} />
      {errors.card || errors.onnx ? null : <ProblemAlert error={upload.error} />}
      {uploaded ? <p role="status">Registered {uploaded}.</p> : null}
    </Form>
  )
}
