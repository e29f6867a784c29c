import { useState } from 'react'
import { useSession } from './session.js'
import { type PostPath, type UploadAnswer, uploadWithProgress } from './upload.js'

/**
 * One multipart route's upload, as a form shows it: the fraction sent, the service's problem,
 * and whether a request is on its way (to keep the button from sending twice).
 */
export function useUpload<P extends PostPath>(path: P) {
  const { client } = useSession()
  const [progress, setProgress] = useState<number | null>(null)
  const [error, setError] = useState<unknown>(null)
  const [sending, setSending] = useState(false)

  /** Sends `form`; the answer, or undefined when it was refused (the problem is in `error`). */
  const send = async (form: FormData): Promise<UploadAnswer<P> | undefined> => {
    setError(null)
    setProgress(0)
    setSending(true)
    try {
      return (await uploadWithProgress(client, path, form, setProgress)).body
    } catch (failure) {
      setError(failure)
      setProgress(null)
      return undefined
    } finally {
      setSending(false)
    }
  }
  return { progress, error, sending, send }
}
