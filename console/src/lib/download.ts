import type { OrderFlowClient } from '@orderflow/client'

/**
 * Saves an authenticated download. A plain link cannot carry the bearer token (and a token
 * in the URL would end up in logs), so the file is fetched through the client and handed
 * to the browser as an object URL.
 */
export async function download(client: OrderFlowClient, path: string, fallbackName: string) {
  const response = await client.fetch(path)
  const disposition = response.headers.get('content-disposition') ?? ''
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName
  const url = URL.createObjectURL(await response.blob())
  const link = document.createElement('a')
  link.href = url
  link.download = name
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}
