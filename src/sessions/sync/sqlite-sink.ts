// A durable sink: the agents' documents in a SQLite file (sqlite.ts), staged items in the same file until
// their session completes. Staging writes are grouped into one transaction per turn of the event loop, so a
// DataBatch of hundreds of items costs one write to disk, not hundreds.
import { applyItem, documentHash, inventoryChecksum, type AgentDocuments, type SyncItem, type SyncSessionInfo, type SyncSink } from './sink.ts'
import { closeSqlite, openSqlite, transaction, type SqliteDatabase, type SqliteStatement } from './sqlite.ts'

const KIND = { value: 0, context: 1, clean: 2 } as const
const kindNames = ['value', 'context', 'clean'] as const
const SCHEMA_VERSION = 1
/** Staged rows applied per read: the window a commit holds in memory. */
const PAGE_ROWS = 1024

/**
 * A durable sink: the agents' documents in a SQLite file, and the items of open sessions staged in the same
 * file until their session completes.
 */
export class SqliteSyncSink implements SyncSink {
  readonly #db: SqliteDatabase
  readonly #stage: SqliteStatement
  readonly #page: SqliteStatement
  readonly #upsert: SqliteStatement
  readonly #delete: SqliteStatement
  readonly #clean: SqliteStatement
  readonly #hashes: SqliteStatement
  /** A staging transaction is open; it commits at the end of this turn of the event loop. */
  #staging = false
  #closed = false

  /** Opens (creating it if need be) the sink's SQLite file; ':memory:' for one that does not persist. */
  constructor(path: string) {
    const db = (this.#db = openSqlite(path))
    const version = Number(db.get('PRAGMA user_version')?.user_version ?? 0)
    if (version === 0) {
      transaction(db, () => {
        db.exec(`CREATE TABLE documents (
          agent TEXT NOT NULL, idx TEXT NOT NULL, id TEXT NOT NULL, data BLOB NOT NULL, version TEXT NOT NULL, hash TEXT NOT NULL,
          PRIMARY KEY (agent, idx, id)
        )`)
        db.exec(`CREATE TABLE staged (
          session TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, operation INTEGER NOT NULL,
          id TEXT NOT NULL, idx TEXT NOT NULL, version TEXT NOT NULL, data BLOB NOT NULL,
          PRIMARY KEY (session, seq)
        ) WITHOUT ROWID`)
        db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
      })
    } else if (version !== SCHEMA_VERSION) {
      closeSqlite(db)
      throw new Error(`The sync sink at ${path} has schema version ${version}; this Volley reads version ${SCHEMA_VERSION}`)
    }
    // Sessions staged before a restart cannot complete: their agents start them again.
    db.run('DELETE FROM staged')
    this.#stage = db.prepare('INSERT OR IGNORE INTO staged (session, seq, kind, operation, id, idx, version, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    this.#page = db.prepare('SELECT seq, kind, operation, id, idx, version, data FROM staged WHERE session = ? AND seq >= ? ORDER BY seq LIMIT ?')
    this.#upsert = db.prepare(`INSERT INTO documents (agent, idx, id, data, version, hash) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (agent, idx, id) DO UPDATE SET data = excluded.data, version = excluded.version, hash = excluded.hash`)
    this.#delete = db.prepare('DELETE FROM documents WHERE agent = ? AND idx = ? AND id = ?')
    this.#clean = db.prepare('DELETE FROM documents WHERE agent = ? AND idx = ?')
    this.#hashes = db.prepare('SELECT hash FROM documents WHERE agent = ? AND idx = ?')
  }

  stage(session: SyncSessionInfo, item: SyncItem): void {
    if (!this.#staging) {
      this.#staging = true
      this.#db.exec('BEGIN')
      setImmediate(() => this.#endStaging())
    }
    const isClean = item.kind === 'clean'
    this.#stage.run([
      String(session.id), item.seq, KIND[item.kind], item.kind === 'value' && item.operation === 'delete' ? 1 : 0,
      isClean ? '' : item.id, item.index, item.kind === 'value' ? String(item.version) : '0', isClean ? new Uint8Array(0) : item.data,
    ])
  }

  #endStaging(): void {
    if (!this.#staging || this.#closed) return
    this.#staging = false
    this.#db.exec('COMMIT')
  }

  commit(session: SyncSessionInfo): void {
    this.#endStaging()
    const db = this.#db
    const key = String(session.id)
    transaction(db, () => {
      if (session.mode === 'module-full') for (const index of session.indices) this.#clean.run([session.agentId, index])
      for (let seq = 0; ; ) {
        const rows = this.#page.all([key, seq, PAGE_ROWS])
        if (rows.length === 0) break
        for (const row of rows) {
          const item = itemOf(row)
          applyItem(item, {
            upsert: (index, id, data, version) => this.#upsert.run([session.agentId, index, id, data, String(version), documentHash(data)]),
            remove: (index, id) => this.#delete.run([session.agentId, index, id]),
            clean: (index) => this.#clean.run([session.agentId, index]),
          })
        }
        seq = Number(rows[rows.length - 1]!.seq) + 1
      }
      db.run('DELETE FROM staged WHERE session = ?', [key])
    })
  }

  discard(session: SyncSessionInfo): void {
    this.#endStaging()
    this.#db.run('DELETE FROM staged WHERE session = ?', [String(session.id)])
  }

  checksum(agentId: string, index: string): string {
    return inventoryChecksum(this.#hashes.all([agentId, index]).map((row) => row.hash as string))
  }

  /** How many documents an agent has here, by index. */
  counts(agentId: string): Map<string, number> {
    const rows = this.#db.all('SELECT idx, count(*) AS n FROM documents WHERE agent = ? GROUP BY idx', [agentId])
    return new Map(rows.map((row) => [row.idx as string, Number(row.n)]))
  }

  /** An agent's documents (index → id → document), read whole: for checks and tools, not for large copies. */
  documents(agentId: string): AgentDocuments {
    const documents: AgentDocuments = new Map()
    for (const row of this.#db.all('SELECT idx, id, data, version, hash FROM documents WHERE agent = ?', [agentId])) {
      const index = row.idx as string
      let inIndex = documents.get(index)
      if (inIndex === undefined) documents.set(index, (inIndex = new Map()))
      inIndex.set(row.id as string, { data: row.data as Uint8Array, version: BigInt(row.version as string), hash: row.hash as string })
    }
    return documents
  }

  close(): void {
    if (this.#closed) return
    this.#endStaging()
    this.#closed = true
    for (const statement of [this.#stage, this.#page, this.#upsert, this.#delete, this.#clean, this.#hashes]) statement.finalize()
    closeSqlite(this.#db)
  }
}

function itemOf(row: Record<string, unknown>): SyncItem {
  const kind = kindNames[Number(row.kind)] ?? 'value'
  const seq = Number(row.seq)
  const index = row.idx as string
  if (kind === 'clean') return { kind, seq, index }
  const data = row.data as Uint8Array
  if (kind === 'context') return { kind, seq, id: row.id as string, index, data }
  return { kind, seq, operation: Number(row.operation) === 1 ? 'delete' : 'upsert', id: row.id as string, index, version: BigInt(row.version as string), data }
}
