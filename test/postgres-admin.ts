import pg from 'pg'
/** Runs one statement that cannot run in a transaction (CREATE/DROP DATABASE) on `url`. */
export async function administer(url: string, statement: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  try {
    await admin.query(statement)
  } finally {
    await admin.end()
  }
}
