// The agent's durable queue of differences (research §B.2): one row per document (id and index), coalesced
// as it changes, numbered when a DELTA sync takes it, cleared when the manager has it. A row is PENDING
// (waiting for the next sync), SYNCING (in the sync that runs) or SYNCING_UPDATED (changed while it
// was being synced: kept, and sent again by the next sync). The rows live in SQLite (sqlite.ts), so they
// survive a restart of the process; a sync reads them a page at a time, so memory does not grow with them.
import { openSqlite, transaction, type SqliteDatabase, type SqliteStatement } from './sqlite.ts'
import type { SyncOperation } from './wire.ts'

/** A change to a document, as persistDifference() records it. */
export type DifferenceOperation = 'create' | 'modify' | 'delete'

/** One numbered item of a sync, as the agent sends it. */
export interface SyncQueueItem {
  readonly seq: number
  readonly id: string
  readonly index: string
  readonly operation: SyncOperation
  readonly version: bigint
  readonly data: Uint8Array
  /** A DataContext (sent with the values, not stored as a document). */
  readonly context: boolean
}

const PENDING = 0
const SYNCING = 1
const SYNCING_UPDATED = 2
const SCHEMA_VERSION = 1

/** The rows a sync took: how many of each kind (values are numbered first, then contexts). */
export interface MarkedForSync {
  readonly values: number
  readonly contexts: number
}

export class SyncQueue {
  readonly #db: SqliteDatabase
  readonly #upsert: SqliteStatement
  readonly #dropUnsent: SqliteStatement
  readonly #range: SqliteStatement
  #closed = false

  /** Opens the queue in the SQLite file at `path` (created if need be), or in memory (':memory:', the default). */
  constructor(path = ':memory:') {
    const db = (this.#db = openSqlite(path))
    const version = Number(db.get('PRAGMA user_version')?.user_version ?? 0)
    if (version === 0) {
      transaction(db, () => {
        db.exec(`CREATE TABLE IF NOT EXISTS differences (
          id TEXT NOT NULL,
          idx TEXT NOT NULL,
          data BLOB NOT NULL,
          operation INTEGER NOT NULL, -- 0 upsert, 1 delete
          version INTEGER NOT NULL,
          context INTEGER NOT NULL,
          status INTEGER NOT NULL,
          created INTEGER NOT NULL,   -- created since the manager last saw it: a delete leaves nothing to send
          UNIQUE (id, idx)
        )`)
        db.exec('CREATE INDEX IF NOT EXISTS differences_by_status ON differences (status)')
        // The numbering of the sync that runs: seq → the row it names.
        db.exec('CREATE TABLE IF NOT EXISTS sync_order (seq INTEGER PRIMARY KEY, row INTEGER NOT NULL)')
        db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
      })
    } else if (version !== SCHEMA_VERSION) {
      db.close()
      throw new Error(`The sync queue at ${path} has schema version ${version}; this Volley reads version ${SCHEMA_VERSION}`)
    }
    // One statement per change: a new row is PENDING; a change to a PENDING row leaves it PENDING, to a row
    // being synced marks it SYNCING_UPDATED.
    this.#upsert = db.prepare(`INSERT INTO differences (id, idx, data, operation, version, context, status, created) VALUES (?, ?, ?, ?, ?, ?, ${PENDING}, ?)
      ON CONFLICT (id, idx) DO UPDATE SET data = excluded.data, operation = excluded.operation, version = excluded.version,
      context = excluded.context, status = CASE status WHEN ${PENDING} THEN ${PENDING} ELSE ${SYNCING_UPDATED} END`)
    // Created and deleted before any sync took it: the manager never needs to hear of it.
    this.#dropUnsent = db.prepare(`DELETE FROM differences WHERE id = ? AND idx = ? AND status = ${PENDING} AND created = 1`)
    this.#range = db.prepare(`SELECT o.seq, d.id, d.idx, d.data, d.operation, d.version, d.context FROM sync_order o
      JOIN differences d ON d.rowid = o.row WHERE o.seq BETWEEN ? AND ? ORDER BY o.seq LIMIT ?`)
    // A sync that was running when the process ended did not finish: its rows wait for the next one.
    this.resetSyncingItems()
  }

  /** Records one change, coalesced with what the queue holds for the same document. */
  persist(id: string, operation: DifferenceOperation, index: string, data: Uint8Array, version: bigint, context: boolean): void {
    this.#persist(id, operation, index, data, version, context)
  }

  /** Records many changes in one transaction (one write to disk). */
  persistMany(changes: Iterable<readonly [id: string, operation: DifferenceOperation, index: string, data: Uint8Array, version: bigint, context: boolean]>): void {
    transaction(this.#db, () => {
      for (const change of changes) this.#persist(...change)
    })
  }

  #persist(id: string, operation: DifferenceOperation, index: string, data: Uint8Array, version: bigint, context: boolean): void {
    if (operation === 'delete' && this.#dropUnsent.run([id, index]).changes > 0) return
    this.#upsert.run([id, index, data, operation === 'delete' ? 1 : 0, version, context ? 1 : 0, operation === 'create' ? 1 : 0])
  }

  /**
   * Takes every PENDING row into a sync: SYNCING, numbered from 0, values first (by id and index), then
   * contexts. Returns how many of each.
   */
  fetchAndMarkForSync(): MarkedForSync {
    return transaction(this.#db, () => {
      const db = this.#db
      db.run('DELETE FROM sync_order')
      db.run(`INSERT INTO sync_order (seq, row) SELECT row_number() OVER (ORDER BY context, rowid) - 1, rowid FROM differences WHERE status = ${PENDING}`)
      db.run(`UPDATE differences SET status = ${SYNCING}, created = 0 WHERE status = ${PENDING}`)
      const counts = db.get(`SELECT count(*) AS total, coalesce(sum(context), 0) AS contexts FROM differences WHERE status = ${SYNCING}`)!
      return { values: Number(counts.total) - Number(counts.contexts), contexts: Number(counts.contexts) }
    })
  }

  /** The numbered items with seq from `begin` to `end` (inclusive), in seq order, at most `limit` of them. */
  items(begin: number, end: number, limit: number): SyncQueueItem[] {
    return this.#range.all([begin, end, limit]).map((row) => ({
      seq: Number(row.seq),
      id: row.id as string,
      index: row.idx as string,
      operation: Number(row.operation) === 1 ? 'delete' : 'upsert',
      version: BigInt(row.version as number | bigint),
      data: row.data as Uint8Array,
      context: Number(row.context) === 1,
    }))
  }

  /** The distinct indices of the values in the running sync, sorted (its Start.index). */
  syncingIndices(): string[] {
    return this.#db.all(`SELECT DISTINCT idx FROM differences WHERE status IN (${SYNCING}, ${SYNCING_UPDATED}) AND context = 0 ORDER BY idx`).map((row) => row.idx as string)
  }

  /** After a sync the manager took: its rows go, except those changed meanwhile, which wait for the next. */
  clearSyncedItems(): void {
    transaction(this.#db, () => {
      this.#db.run(`DELETE FROM differences WHERE status = ${SYNCING}`)
      this.#db.run(`UPDATE differences SET status = ${PENDING} WHERE status = ${SYNCING_UPDATED}`)
      this.#db.run('DELETE FROM sync_order')
    })
  }

  /** After a sync that failed: its rows wait for the next one. */
  resetSyncingItems(): void {
    transaction(this.#db, () => {
      this.#db.run(`UPDATE differences SET status = ${PENDING} WHERE status IN (${SYNCING}, ${SYNCING_UPDATED})`)
      this.#db.run('DELETE FROM sync_order')
    })
  }

  /** Removes every row of these indices (the manager cleaned them). */
  clearIndices(indices: readonly string[]): void {
    transaction(this.#db, () => {
      for (const index of indices) this.#db.run('DELETE FROM differences WHERE idx = ?', [index])
    })
  }

  /** Rows by status, for tests and diagnostics. */
  counts(): { pending: number; syncing: number; syncingUpdated: number } {
    const rows = this.#db.all('SELECT status, count(*) AS n FROM differences GROUP BY status')
    const count = (status: number): number => Number(rows.find((row) => Number(row.status) === status)?.n ?? 0)
    return { pending: count(PENDING), syncing: count(SYNCING), syncingUpdated: count(SYNCING_UPDATED) }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const statement of [this.#upsert, this.#dropUnsent, this.#range]) statement.finalize()
    this.#db.close()
  }
}
