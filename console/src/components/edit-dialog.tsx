import type { ReactNode } from 'react'
import { Button, Form } from 'react-aria-components'
import { FormModal } from './modal.js'
import { fieldErrorsOf, ProblemAlert } from './problem-alert.js'

/**
 * A create-or-edit form in a modal: the fields, Save and Cancel. A problem that names fields
 * is shown on them (by the caller's fields); any other problem as an alert above the buttons.
 */
export function EditDialog(props: {
  title: string
  onClose: () => void
  onSave: () => void
  error: unknown
  children: ReactNode
}) {
  const namesFields = Object.keys(fieldErrorsOf(props.error)).length > 0
  return (
    <FormModal title={props.title} isOpen onClose={props.onClose}>
      <Form
        onSubmit={(event) => {
          event.preventDefault()
          props.onSave()
        }}
        className="stack"
      >
        {props.children}
        {namesFields ? null : <ProblemAlert error={props.error} />}
        <div className="actions">
          <Button type="submit" className="primary">
            Save
          </Button>
          <Button className="quiet" onPress={props.onClose}>
            Cancel
          </Button>
        </div>
      </Form>
    </FormModal>
  )
}
