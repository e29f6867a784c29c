import { Button } from 'react-aria-components'

interface PagerProps {
  page: number
  totalPages: number
  total: number
  onPage: (page: number) => void
}

export function Pager({ page, totalPages, total, onPage }: PagerProps) {
  return (
    <nav className="pager" aria-label="Pages">
      <Button isDisabled={page <= 1} onPress={() => onPage(page - 1)}>
        Previous
      </Button>
      <span aria-live="polite">
        Page {page} of {Math.max(totalPages, 1)} · {total} in all
      </span>
      <Button isDisabled={page >= totalPages} onPress={() => onPage(page + 1)}>
        Next
      </Button>
    </nav>
  )
}
