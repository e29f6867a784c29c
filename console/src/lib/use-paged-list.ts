import { useCallback, useState } from 'react'
import { type Loaded, useLoad } from './use-load.js'

/** A list route's answer: `{items, page, page_size, total, total_pages}`. */
export interface PageOf<T> {
  items: T[]
  page: number
  total: number
  total_pages: number
}

export interface PagedList<T, F> extends Loaded<PageOf<T>> {
  filters: F
  /** Changes one filter; the list starts again from its first page. */
  setFilter: <K extends keyof F>(name: K, value: F[K]) => void
  setPage: (page: number) => void
}

/**
 * A paged list with filters: `load` is asked for the page and the filters as they are now,
 * and a changed filter goes back to page 1 (page 3 of the old filter means nothing).
 */
export function usePagedList<T, F extends object>(
  initial: F,
  load: (query: F & { page: number }, signal: AbortSignal) => Promise<PageOf<T>>,
): PagedList<T, F> {
  const [filters, setFilters] = useState(initial)
  const [page, setPage] = useState(1)
  const list = useLoad((signal) => load({ ...filters, page }, signal), [filters, page])
  const setFilter = useCallback(<K extends keyof F>(name: K, value: F[K]) => {
    setFilters((current) => ({ ...current, [name]: value }))
    setPage(1)
  }, [])
  return { ...list, filters, setFilter, setPage }
}
