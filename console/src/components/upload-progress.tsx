import { formatPercent } from '../lib/format.js'

/** How much of an upload has been sent, as a bar and in words; nothing before it starts. */
export function UploadProgress({ label, progress }: { label: string; progress: number | null }) {
  if (progress === null) return null
  return (
    <div className="progress-row">
      <progress max={1} value={progress} aria-label={label} />
      <span>{formatPercent(progress)}</span>
    </div>
  )
}
