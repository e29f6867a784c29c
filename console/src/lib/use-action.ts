import { useCallback, useState } from 'react'

/**
 * A write the screen starts (save, deactivate, activate) and the problem it met, if any:
 * the previous problem is cleared when the next attempt begins.
 */
export function useAction() {
  const [error, setError] = useState<unknown>(null)
  const run = useCallback(async (action: () => Promise<unknown>): Promise<boolean> => {
    setError(null)
    try {
      await action()
      return true
    } catch (failure) {
      setError(failure)
      return false
    }
  }, [])
  return { error, run }
}
