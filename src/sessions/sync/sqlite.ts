// SQLite for the agent's queue and the manager's durable sink: node-sqlite3-wasm, SQLite compiled to
// WebAssembly with its files on Node's fs. One engine on every Node Volley supports: node:sqlite is missing
// from Node 20 and still experimental (a warning at load) where it exists, and a native SQLite binding would
// need a compiler at `npm install`. The files are plain SQLite, readable by any other SQLite.
//
// Its locks are directories (`<file>.lock`), which a process that dies holding one leaves behind. So each
// file opened here also names its owner (`<file>.owner`, the process id): a lock whose owner is gone is
// stale and removed at open; one whose owner lives is refused with ERR_SYNC_FILE_BUSY.
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import sqlite from 'node-sqlite3-wasm'
import { VolleyError } from '../../util/errors.ts'

export type SqliteDatabase = InstanceType<typeof sqlite.Database>
export type SqliteStatement = ReturnType<SqliteDatabase['prepare']>

const owners = new WeakMap<SqliteDatabase, string>()

/** Opens (creating it if need be) the database at `path`, or one in memory for ':memory:'. */
export function openSqlite(path: string): SqliteDatabase {
  if (path === ':memory:') return new sqlite.Database()
  const owner = `${path}.owner`
  const holder = ownerOf(owner)
  if (holder !== undefined && holder !== process.pid && processLives(holder)) {
    throw new VolleyError('ERR_SYNC_FILE_BUSY', `The SQLite file ${path} is open in process ${holder}: one process at a time owns it`)
  }
  // No owner alive: a lock left by one that died is stale.
  if (holder !== process.pid) rmSync(`${path}.lock`, { recursive: true, force: true })
  const db = new sqlite.Database(path)
  writeFileSync(owner, String(process.pid))
  owners.set(db, owner)
  return db
}

/** Closes a database opened by openSqlite(), and gives up its ownership. */
export function closeSqlite(db: SqliteDatabase): void {
  db.close()
  const owner = owners.get(db)
  if (owner !== undefined) rmSync(owner, { force: true })
}

function ownerOf(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8'))
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

function processLives(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it lives, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Runs `work` in one transaction: committed when it returns, rolled back when it throws. */
export function transaction<T>(db: SqliteDatabase, work: () => T): T {
  db.exec('BEGIN')
  try {
    const result = work()
    db.exec('COMMIT')
    return result
  } catch (error) {
    db.exec('ROLLBACK')
    throw error
  }
}
