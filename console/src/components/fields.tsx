import { type ReactNode, useId } from 'react'
import {
  Button,
  FieldError,
  FileTrigger,
  Input,
  Label,
  ListBox,
  ListBoxItem,
  Popover,
  Select,
  SelectValue,
  TextArea,
  TextField,
} from 'react-aria-components'
import { formatBytes } from '../lib/format.js'

interface TextInputProps {
  label: string
  name: string
  value: string
  onChange: (value: string) => void
  /** The service's message for this field, from the problem's `errors[].path`. */
  error?: string | undefined
  type?: 'text' | 'email' | 'password' | 'search' | 'number' | 'url'
  multiline?: boolean
  isRequired?: boolean
  autoComplete?: string
  description?: ReactNode
  inputMode?: 'decimal' | 'numeric' | 'text'
}

/** A labelled text field whose error, when the service names it, is announced with it. */
export function TextInput(props: TextInputProps) {
  return (
    <TextField
      className="field"
      name={props.name}
      value={props.value}
      onChange={props.onChange}
      isInvalid={Boolean(props.error)}
      isRequired={props.isRequired}
      type={props.type ?? 'text'}
      autoComplete={props.autoComplete}
      inputMode={props.inputMode}
      // The service validates; the browser's own bubbles would speak before it could.
      validationBehavior="aria"
    >
      <Label>{props.label}</Label>
      {props.multiline ? <TextArea rows={3} /> : <Input />}
      {props.description ? <small className="hint">{props.description}</small> : null}
      <FieldError>{props.error}</FieldError>
    </TextField>
  )
}

interface ChoiceProps<T extends string> {
  label: string
  name: string
  value: T | ''
  options: readonly { id: T | ''; label: string }[]
  onChange: (value: T | '') => void
  error?: string | undefined
}

/** A labelled choice among a few named options (an accessible listbox, keyboard included). */
export function Choice<T extends string>(props: ChoiceProps<T>) {
  return (
    <Select
      className="field"
      name={props.name}
      selectedKey={props.value === '' ? '__none' : props.value}
      onSelectionChange={(key) => props.onChange(key === '__none' ? '' : (String(key) as T))}
      isInvalid={Boolean(props.error)}
      validationBehavior="aria"
    >
      <Label>{props.label}</Label>
      <Button className="select-button">
        <SelectValue />
        <span aria-hidden="true">▾</span>
      </Button>
      <FieldError>{props.error}</FieldError>
      <Popover className="popover">
        <ListBox className="listbox">
          {props.options.map((option) => (
            <ListBoxItem
              key={option.id || '__none'}
              id={option.id || '__none'}
              className="listbox-item"
            >
              {option.label}
            </ListBoxItem>
          ))}
        </ListBox>
      </Popover>
    </Select>
  )
}

interface FileFieldProps {
  label: string
  /** The button's words, e.g. "Choose a card". */
  choose: string
  accept: string[]
  file: File | null
  onSelect: (file: File | null) => void
  error?: string | undefined
}

/**
 * A labelled file choice: a button (a file input cannot be styled or labelled well) and the
 * file chosen, with the service's message for this part announced with the button.
 */
export function FileField(props: FileFieldProps) {
  const id = useId()
  return (
    <fieldset className="field plain" data-invalid={props.error ? true : undefined}>
      <legend className="field-label">{props.label}</legend>
      <div className="actions">
        <FileTrigger
          acceptedFileTypes={props.accept}
          onSelect={(files) => props.onSelect(files?.[0] ?? null)}
        >
          <Button aria-describedby={props.error ? `${id}-error` : `${id}-chosen`}>
            {props.choose}
          </Button>
        </FileTrigger>
        <span id={`${id}-chosen`}>
          {props.file ? `${props.file.name} (${formatBytes(props.file.size)})` : 'No file chosen'}
        </span>
      </div>
      {props.error ? (
        <span id={`${id}-error`} className="field-error">
          {props.error}
        </span>
      ) : null}
    </fieldset>
  )
}
