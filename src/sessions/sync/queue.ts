// The agent's durable queue of differences (research §B.2): one row per document (id and index), coalesced
// as it changes, numbered when a DELTA sync takes it, cleared when the manager has it. A row is PENDING
// (waiting for the next sync), SYNCING (in the sync that runs) or SYNCING_UPDATED (changed while it was
// being synced: kept, and sent again by the next sync). The rows live in SQLite (sqlite.ts), so they survive
// a restart of the process; a sync reads them a page at a time, so memory does not grow with them.
//
// How the states are kept, so that a sync of a million rows rewrites none of them: the sync's numbering is
// a table of its own (seq → row, and the row's revision when the sync took it). A row is SYNCING when it is
// numbered at its current revision, SYNCING_UPDATED when a change has moved its revision on since, PENDING
// when it is not numbered. Each row holds its item as the message that carries it (a DataValue or a
// DataContext, built by the schema's code), so a sync reads one column per item.
import { closeSqlite, openSqlite, transaction, type SqliteDatabase, type SqliteStatement } from './sqlite.ts'
import { SyncEncoder, decodeSyncMessage, type SyncOperation } from './wire.ts'

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

const SCHEMA_VERSION = 1

/** The rows a sync took: how many of each kind. */
export interface MarkedForSync {
  readonly values: number
  readonly contexts: number
}

/**
 * An agent's durable queue of differences, in SQLite: one row per document (id and index), coalesced as it
 * changes, numbered when a delta sync takes it, cleared once the manager has it.
 */
export class SyncQueue {
  readonly #db: SqliteDatabase
  readonly #encoder = new SyncEncoder()
  readonly #upsert: SqliteStatement
  readonly #dropUnsent: SqliteStatement
  readonly #range: SqliteStatement
  /** Changes recorded since the running sync took its rows: none, and clearing it empties the queue. */
  #changedDuringSync = 0
  #closed = false

  /** Opens the queue in the SQLite file at `path` (created if need be), or in memory (':memory:', the default). */
  constructor(path = ':memory:') {
    const db = (this.#db = openSqlite(path))
    // One process owns the queue: the lock is taken once, not at each transaction, and the journal kept
    // (truncated) rather than made and removed each time.
    db.exec('PRAGMA locking_mode = EXCLUSIVE')
    db.exec('PRAGMA journal_mode = TRUNCATE')
    const version = Number(db.get('PRAGMA user_version')?.user_version ?? 0)
    if (version === 0) {
      transaction(db, () => {
        db.exec(`CREATE TABLE differences (
          id TEXT NOT NULL,
          idx TEXT NOT NULL,
          item BLOB NOT NULL,         -- the DataValue or DataContext that carries it (seq and session 0)
          context INTEGER NOT NULL,
          revision INTEGER NOT NULL,  -- moved on by each change
          created INTEGER NOT NULL,   -- created since the manager last saw it: a delete leaves nothing to send
          UNIQUE (id, idx)
        )`)
        // Start.index (the distinct indices of the values) and the count of contexts, read off an index in
        // order: no sort, whose memory would grow with the queue.
        db.exec('CREATE INDEX differences_by_kind ON differences (context, idx)')
        // The running sync: seq + 1 → the row it names, at the revision it took.
        db.exec('CREATE TABLE sync_order (seq INTEGER PRIMARY KEY, row INTEGER NOT NULL, revision INTEGER NOT NULL)')
        db.exec('CREATE INDEX sync_order_by_row ON sync_order (row)')
        db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
      })
    } else if (version !== SCHEMA_VERSION) {
      closeSqlite(db)
      throw new Error(`The sync queue at ${path} has schema version ${version}; this Volley reads version ${SCHEMA_VERSION}`)
    }
    this.#upsert = db.prepare(`INSERT INTO differences (id, idx, item, context, revision, created) VALUES (?, ?, ?, ?, 1, ?)
      ON CONFLICT (id, idx) DO UPDATE SET item = excluded.item, context = excluded.context, revision = revision + 1`)
    // Created and deleted before any sync took it: the manager never needs to hear of it.
    this.#dropUnsent = db.prepare(`DELETE FROM differences WHERE id = ? AND idx = ? AND created = 1
      AND NOT EXISTS (SELECT 1 FROM sync_order WHERE row = differences.rowid)`)
    this.#range = db.prepare(`SELECT o.seq - 1 AS seq, d.item FROM sync_order o JOIN differences d ON d.rowid = o.row
      WHERE o.seq BETWEEN ? AND ? ORDER BY o.seq LIMIT ?`)
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
    this.#changedDuringSync++
    if (operation === 'delete' && this.#dropUnsent.run([id, index]).changes > 0) return
    const item = context
      ? this.#encoder.encode({ type: 'data-context', seq: 0, session: 0n, id, index, data })
      : this.#encoder.encode({ type: 'data-value', seq: 0, session: 0n, operation: operation === 'delete' ? 'delete' : 'upsert', id, index, version, data })
    this.#upsert.run([id, index, item, context ? 1 : 0, operation === 'create' ? 1 : 0])
  }

  /** Takes every PENDING row into a sync, numbered from 0 in the order recorded. Returns how many of each kind. */
  fetchAndMarkForSync(): MarkedForSync {
    return transaction(this.#db, () => {
      const db = this.#db
      // No sync runs (one at a time; each ends with clear or reset): every row is PENDING. An empty table
      // numbers its first row 1: seq + 1.
      db.run('DELETE FROM sync_order')
      const total = db.run('INSERT INTO sync_order (row, revision) SELECT rowid, revision FROM differences ORDER BY rowid').changes
      const contexts = Number(db.get('SELECT count(*) AS n FROM differences WHERE context = 1')!.n)
      this.#changedDuringSync = 0
      return { values: total - contexts, contexts }
    })
  }

  /** The numbered items with seq from `begin` to `end` (inclusive), in seq order, at most `limit` of them. */
  items(begin: number, end: number, limit: number): SyncQueueItem[] {
    const rows = this.#range.all([begin + 1, Math.min(end, Number.MAX_SAFE_INTEGER - 1) + 1, limit])
    const items: SyncQueueItem[] = []
    for (const row of rows) {
      const seq = Number(row.seq)
      const message = decodeSyncMessage(row.item as Uint8Array)
      if (message.type === 'data-value') {
        items.push({ seq, id: message.id, index: message.index, operation: message.operation, version: message.version, data: message.data, context: false })
      } else if (message.type === 'data-context') {
        items.push({ seq, id: message.id, index: message.index, operation: 'upsert', version: 0n, data: message.data, context: true })
      } else {
        throw new Error(`The sync queue's item ${seq} is damaged (${message.type === 'malformed' ? message.reason : message.type}): the queue file was changed outside Volley`)
      }
    }
    return items
  }

  /** The distinct indices of the values in the running sync, sorted (its Start.index). */
  syncingIndices(): string[] {
    // Every row is in the running sync (it takes them all), so the rows' values are its values.
    return this.#db.all('SELECT DISTINCT idx FROM differences WHERE context = 0 ORDER BY idx').map((row) => row.idx as string)
  }

  /** After a sync the manager took: its rows go, except those changed meanwhile, which wait for the next. */
  clearSyncedItems(): void {
    const db = this.#db
    transaction(db, () => {
      if (this.#changedDuringSync === 0) {
        // Nothing changed while it ran: every row was in it. (SQLite empties a whole table without a row scan.)
        db.run('DELETE FROM differences')
      } else {
        db.run('DELETE FROM differences WHERE EXISTS (SELECT 1 FROM sync_order o WHERE o.row = differences.rowid AND o.revision = differences.revision)')
        this.#forgetCreated()
      }
      db.run('DELETE FROM sync_order')
    })
  }

  /** After a sync that failed: its rows wait for the next one. */
  resetSyncingItems(): void {
    transaction(this.#db, () => {
      this.#forgetCreated()
      this.#db.run('DELETE FROM sync_order')
    })
  }

  /** Rows a sync took have been sent: a later delete of one must reach the manager. */
  #forgetCreated(): void {
    this.#db.run('UPDATE differences SET created = 0 WHERE created = 1 AND EXISTS (SELECT 1 FROM sync_order WHERE row = differences.rowid)')
  }

  /** Removes every row of these indices (the manager cleaned them). */
  clearIndices(indices: readonly string[]): void {
    transaction(this.#db, () => {
      for (const index of indices) this.#db.run('DELETE FROM differences WHERE idx = ?', [index])
    })
  }

  /** Rows by state, for tests and diagnostics. */
  counts(): { pending: number; syncing: number; syncingUpdated: number } {
    const row = this.#db.get(`SELECT
      count(*) - count(o.row) AS pending,
      coalesce(sum(o.revision = d.revision), 0) AS syncing,
      coalesce(sum(o.revision <> d.revision), 0) AS updated
      FROM differences d LEFT JOIN sync_order o ON o.row = d.rowid`)!
    return { pending: Number(row.pending), syncing: Number(row.syncing), syncingUpdated: Number(row.updated) }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const statement of [this.#upsert, this.#dropUnsent, this.#range]) statement.finalize()
    closeSqlite(this.#db)
  }
}
