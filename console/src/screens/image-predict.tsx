import { useEffect, useState } from 'react'
import { Button, DropZone, type FileDropItem, FileTrigger, Text } from 'react-aria-components'
import { ProblemAlert } from '../components/problem-alert.js'
import { formatPercent } from '../lib/format.js'
import { useSession } from '../lib/session.js'

interface ImagePrediction {
  prediction: string
  probability: number
  top_k: { label: string; probability: number }[]
}

const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp']

/**
 * Classifies a picture dropped on the zone (or chosen with the button, for keyboards) with
 * an image model's `predict/image` route. The route takes a multipart body, which the typed
 * calls do not describe, so it goes through the client's authenticated fetch.
 */
export function ImagePredictForm({ model }: { model: string }) {
  const { client } = useSession()
  const [file, setFile] = useState<File | null>(null)
  const [preview, setPreview] = useState<string | null>(null)
  const [result, setResult] = useState<ImagePrediction | null>(null)
  const [error, setError] = useState<unknown>(null)

  // The preview is a blob: URL (allowed by the console's img-src), released when replaced.
  useEffect(() => {
    if (!file) return
    const url = URL.createObjectURL(file)
    setPreview(url)
    return () => URL.revokeObjectURL(url)
  }, [file])

  const predict = async (picture: File) => {
    setFile(picture)
    setResult(null)
    setError(null)
    const form = new FormData()
    form.append('image', picture)
    try {
      const response = await client.fetch(`/v1/models/${encodeURIComponent(model)}/predict/image`, {
        method: 'POST',
        body: form,
      })
      setResult((await response.json()) as ImagePrediction)
    } catch (failure) {
      setError(failure)
    }
  }

  return (
    <div className="card">
      <h2>Classify a picture</h2>
      <DropZone
        className="drop-zone"
        getDropOperation={(types) =>
          IMAGE_TYPES.some((type) => types.has(type)) ? 'copy' : 'cancel'
        }
        onDrop={async (event) => {
          const item = event.items.find(
            (dropped): dropped is FileDropItem => dropped.kind === 'file',
          )
          if (item) await predict(await item.getFile())
        }}
      >
        <Text slot="label">Drop a JPEG, PNG or WebP picture here, or</Text>{' '}
        <FileTrigger
          acceptedFileTypes={IMAGE_TYPES}
          onSelect={(files) => {
            const chosen = files?.[0]
            if (chosen) void predict(chosen)
          }}
        >
          <Button>choose a file</Button>
        </FileTrigger>
      </DropZone>
      {preview ? <img className="preview" src={preview} alt={`Sent: ${file?.name ?? ''}`} /> : null}
      <ProblemAlert error={error} />
      {result ? (
        <output className="result" aria-live="polite" data-testid="image-prediction">
          Prediction: <strong>{result.prediction}</strong> ({formatPercent(result.probability)})
          <ul>
            {result.top_k.map((entry) => (
              <li key={entry.label}>
                {entry.label}: {formatPercent(entry.probability)}
              </li>
            ))}
          </ul>
        </output>
      ) : null}
    </div>
  )
}
