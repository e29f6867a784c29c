import { createHash } from 'node:crypto'
import { eq } from 'drizzle-orm'
import type { Transporter } from 'nodemailer'
import type { Executor } from '../../db/client.js'
import { emailDeliveries } from '../../db/schema/index.js'
import type { EmailTemplate, JobParams } from './contract.js'
import type { JobHandler } from './handlers.js'
import { enqueueJob } from './repository.js'

export interface Mailer {
  send(message: {
    from: string
    to: string
    subject: string
    text: string
    messageId: string
  }): Promise<void>
  close(): void
}

/**
 * Nodemailer over SMTP_URL (smtp:// or smtps://, credentials in the URL). Nodemailer (~3 MB
 * of heap) is imported with the first email, not at start: a process may never send one.
 */
export function createSmtpMailer(url: string, options: { timeoutMs: number }): Mailer {
  const transportUrl = withTimeouts(url, options.timeoutMs)
  let transport: Promise<Transporter> | undefined
  const open = () => {
    transport ??= import('nodemailer').then(({ default: nodemailer }) =>
      nodemailer.createTransport(transportUrl),
    )
    return transport
  }
  return {
    async send(message) {
      await (await open()).sendMail(message)
    },
    close: () => {
      void transport?.then(
        (opened) => opened.close(),
        () => {},
      )
    },
  }
}

/** Nodemailer reads its SMTP options from the URL's query too. */
function withTimeouts(url: string, timeoutMs: number): string {
  const parsed = new URL(url)
  for (const name of ['connectionTimeout', 'greetingTimeout', 'socketTimeout']) {
    if (!parsed.searchParams.has(name)) parsed.searchParams.set(name, String(timeoutMs))
  }
  return parsed.href
}

/**
 * The Message-ID of an event's email, derived from the event: a resend after a crash between
 * the SMTP server's acceptance and our record carries the same id, so the receiving side can
 * recognise the duplicate.
 */
export function messageIdOf(eventKey: string, domain: string): string {
  return `<${createHash('sha256').update(eventKey).digest('hex').slice(0, 32)}@${domain}>`
}

const TEMPLATES: Record<
  EmailTemplate,
  (data: Record<string, unknown>) => { subject: string; text: string }
> = {
  order_confirmation: (data) => ({
    subject: `Your order ${String(data.order_id)} is confirmed`,
    text: [
      `Hello ${String(data.customer_name ?? '')},`.replace(' ,', ','),
      '',
      `We have received your order ${String(data.order_id)} for a total of ${String(data.total)}.`,
      'We will let you know when it ships.',
    ].join('\n'),
  }),
  welcome: (data) => ({
    subject: 'Welcome to OrderFlow',
    text: [
      `Hello ${String(data.full_name ?? '')},`.replace(' ,', ','),
      '',
      'Your account is ready. Sign in with your email address to get started.',
    ].join('\n'),
  }),
}

export interface EmailHandlerDeps {
  db: Executor
  mailer: Mailer
  from: string
}

/**
 * Sends one event's email at most once as far as the database can know: a delivery already
 * recorded for the event is not sent again; otherwise the email is sent, then recorded. A
 * crash between the two (or a lost SMTP answer) sends it once more on the retry, with the
 * same Message-ID — the one duplicate at-least-once delivery allows.
 */
export function createEmailHandler({ db, mailer, from }: EmailHandlerDeps): JobHandler<'email'> {
  const domain = from.split('@')[1]?.replace(/>.*$/, '') || 'orderflow.local'
  return async ({ job }) => {
    const { to, template, data, event_key } = job.params
    const [sent] = await db
      .select()
      .from(emailDeliveries)
      .where(eq(emailDeliveries.eventKey, event_key))
    if (sent) return { message_id: sent.messageId, skipped: 'already_sent' as const }
    const messageId = messageIdOf(event_key, domain)
    const content = TEMPLATES[template](data)
    await mailer.send({ from, to, messageId, ...content })
    await db
      .insert(emailDeliveries)
      .values({ eventKey: event_key, messageId, recipient: to, template, jobId: job.id })
      .onConflictDoNothing()
    return { message_id: messageId }
  }
}

/**
 * Enqueues an event's email in the caller's transaction (the outbox): it is sent if and only
 * if the transaction commits, and one event makes one job however often this runs.
 */
export function enqueueEmail(
  tx: Executor,
  email: Omit<JobParams<'email'>, 'event_key'> & { event_key: string },
  meta: { owner_id: string | null; request_id?: string | null },
) {
  return enqueueJob(tx, {
    type: 'email',
    params: email,
    owner_id: meta.owner_id,
    request_id: meta.request_id ?? null,
    dedupe_key: `email:${email.event_key}`,
    max_attempts: 5,
  })
}
