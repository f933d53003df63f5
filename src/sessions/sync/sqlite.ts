// SQLite for the agent's queue and the manager's durable sink: node-sqlite3-wasm, SQLite compiled to
// WebAssembly with its files on Node's fs. One engine on every Node Volley supports: node:sqlite is missing
// from Node 20 and still experimental (a warning at load) where it exists, and a native SQLite binding would
// need a compiler at `npm install`. The files are plain SQLite, readable by any other SQLite.
import sqlite from 'node-sqlite3-wasm'

export type SqliteDatabase = InstanceType<typeof sqlite.Database>
export type SqliteStatement = ReturnType<SqliteDatabase['prepare']>

/** Opens (creating it if need be) the database at `path`, or one in memory for ':memory:'. */
export function openSqlite(path: string): SqliteDatabase {
  return path === ':memory:' ? new sqlite.Database() : new sqlite.Database(path)
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
