import type { ReactNode } from 'react'
import { Button } from 'react-aria-components'
import type { Loaded } from '../lib/use-load.js'
import type { PageOf } from '../lib/use-paged-list.js'
import { TextInput } from './fields.js'
import { Pager } from './pager.js'
import { ProblemAlert } from './problem-alert.js'
import { ScrollRegion } from './scroll-region.js'

export interface Column {
  label: string
  numeric?: boolean
}

/**
 * One page of a list as a table: its problem (or the last action's), the rows in a named
 * scroll region, and the pager. With `actions`, a last column holds each row's buttons.
 */
export function ListTable<T>(props: {
  label: string
  list: Loaded<PageOf<T>> & { setPage: (page: number) => void }
  columns: Column[]
  actions?: boolean
  /** A row action's problem (deactivating, say), shown where the list's would be. */
  error?: unknown
  /** Said when the page holds no row. */
  empty?: string
  children: ReactNode
}) {
  const { list } = props
  return (
    <>
      <ProblemAlert error={list.error ?? props.error} />
      <ScrollRegion label={props.label}>
        <table aria-busy={list.loading}>
          <caption className="visually-hidden">{props.label}</caption>
          <thead>
            <tr>
              {props.columns.map((column) => (
                <th key={column.label} scope="col" className={column.numeric ? 'num' : undefined}>
                  {column.label}
                </th>
              ))}
              {props.actions ? (
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              ) : null}
            </tr>
          </thead>
          <tbody>{props.children}</tbody>
        </table>
        {props.empty && list.data?.items.length === 0 ? <p>{props.empty}</p> : null}
      </ScrollRegion>
      {list.data ? (
        <Pager
          page={list.data.page}
          totalPages={list.data.total_pages}
          total={list.data.total}
          onPage={list.setPage}
        />
      ) : null}
    </>
  )
}

/** The text search every list has (`q`). */
export function SearchField({ value, onChange }: { value: string; onChange: (q: string) => void }) {
  return <TextInput label="Search" name="q" type="search" value={value} onChange={onChange} />
}

/** A screen's heading, with its main action (e.g. "New product") beside it when allowed. */
export function TitleRow({
  id,
  title,
  children,
}: {
  id: string
  title: string
  children?: ReactNode
}) {
  return (
    <div className="title-row">
      <h1 id={id}>{title}</h1>
      {children}
    </div>
  )
}

/** A row's Edit and Activate/Deactivate buttons, named after the row for screen readers. */
export function EditToggleActions(props: {
  name: string
  active: boolean
  onEdit: () => void
  onToggle: () => void
}) {
  const toggle = props.active ? 'Deactivate' : 'Activate'
  return (
    <td className="row-actions">
      <Button onPress={props.onEdit} aria-label={`Edit ${props.name}`}>
        Edit
      </Button>
      <Button className="quiet" onPress={props.onToggle} aria-label={`${toggle} ${props.name}`}>
        {toggle}
      </Button>
    </td>
  )
}
