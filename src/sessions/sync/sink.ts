// Where a manager puts what agents sync: staged item by item while a session runs (so the manager itself
// holds none of it), applied when the session completes, dropped when it does not. MemorySyncSink keeps the
// copy in memory; SqliteSyncSink (sqlite-sink.ts) keeps it in a file.
import { createHash } from 'node:crypto'
import type { StartMessage, SyncMode, SyncOperation } from './wire.ts'

/** A session as the sink sees it. */
export interface SyncSessionInfo {
  readonly id: bigint
  readonly agentId: string
  readonly module: string
  readonly mode: SyncMode
  /** The numbered items it carries (values, contexts and cleans). */
  readonly size: number
  /** The indices the session may touch (the Start's, less those the manager does not accept). */
  readonly indices: readonly string[]
  /** The Start as received: the agent's metadata, groups and global version. */
  readonly start: Readonly<StartMessage>
}

/** One numbered item of a session. */
export type SyncItem =
  | { readonly kind: 'value'; readonly seq: number; readonly operation: SyncOperation; readonly id: string; readonly index: string; readonly version: bigint; readonly data: Uint8Array }
  | { readonly kind: 'context'; readonly seq: number; readonly id: string; readonly index: string; readonly data: Uint8Array }
  | { readonly kind: 'clean'; readonly seq: number; readonly index: string }

export interface SyncSink {
  /**
   * Whether it takes sessions now: false makes the manager answer Start with Offline (Wazuh's
   * "indexer down"). Default: always.
   */
  available?(): boolean
  /**
   * Keeps one item of an open session, each seq once, in arrival order (not seq order). `item.data` is a view
   * into the received message: copy what you keep. A throw fails the session (EndAck Error).
   */
  stage(session: SyncSessionInfo, item: SyncItem): void
  /**
   * Applies a complete session, its items in seq order: a ModuleFull first removes the agent's documents of
   * the session's indices; a clean removes the agent's documents of its index; metadata and group modes carry
   * no items (their news is the Start). Resolving answers EndAck Ok; a rejection, EndAck Error. The staged
   * items may go once it has settled.
   */
  commit(session: SyncSessionInfo): void | Promise<void>
  /** Drops what was staged for a session that will not complete (expired, replaced, failed). */
  discard(session: SyncSessionInfo): void
  /**
   * The checksum of the agent's documents in an index, as inventoryChecksum() computes it (a ModuleCheck
   * compares the agent's with it).
   */
  checksum(agentId: string, index: string): string | Promise<string>
}

/** A document's hash in checksums: the lowercase hex SHA-1 of its data. */
export function documentHash(data: Uint8Array): string {
  return createHash('sha1').update(data).digest('hex')
}

/**
 * The checksum of a set of documents, the agent's and the manager's alike: the lowercase hex
 * SHA-1 of their hashes (documentHash()), sorted ascending and concatenated.
 */
export function inventoryChecksum(hashes: Iterable<string>): string {
  const sorted = [...hashes].sort()
  const hash = createHash('sha1')
  for (const value of sorted) hash.update(value)
  return hash.digest('hex')
}

/** A document as a sink keeps it. */
export interface SyncDocument {
  readonly data: Uint8Array
  readonly version: bigint
  /** documentHash(data), kept for checksums. */
  readonly hash: string
}

/** The agent's data as a manager holds it: index → document id → document. */
export type AgentDocuments = Map<string, Map<string, SyncDocument>>

/** Where a sink applies items: its store of one agent's documents. */
export interface DocumentTarget {
  upsert(index: string, id: string, data: Uint8Array, version: bigint): void
  remove(index: string, id: string): void
  /** Removes every document of the index. */
  clean(index: string): void
}

/**
 * Applies one item of a complete session (the sinks call it in seq order, after a ModuleFull's removal of
 * its indices): the one rule of what an item means, shared by the sinks. Contexts travel with a sync for
 * whoever processes it; they are not documents.
 */
export function applyItem(item: SyncItem, target: DocumentTarget): void {
  if (item.kind === 'clean') target.clean(item.index)
  else if (item.kind === 'value' && item.operation === 'delete') target.remove(item.index, item.id)
  else if (item.kind === 'value') target.upsert(item.index, item.id, item.data, item.version)
}

/** A sink that keeps everything in memory: for tests, and for managers whose copy fits. */
export class MemorySyncSink implements SyncSink {
  readonly #staged = new Map<bigint, SyncItem[]>()
  readonly #agents = new Map<string, AgentDocuments>()
  readonly #starts = new Map<string, Readonly<StartMessage>>()

  stage(session: SyncSessionInfo, item: SyncItem): void {
    let items = this.#staged.get(session.id)
    if (items === undefined) this.#staged.set(session.id, (items = []))
    items.push(item.kind === 'clean' ? item : { ...item, data: item.data.slice() })
  }

  commit(session: SyncSessionInfo): void {
    const items = (this.#staged.get(session.id) ?? []).sort((a, b) => a.seq - b.seq)
    this.#staged.delete(session.id)
    let documents = this.#agents.get(session.agentId)
    if (documents === undefined) this.#agents.set(session.agentId, (documents = new Map()))
    const agent = documents
    if (session.mode === 'module-full') for (const index of session.indices) agent.delete(index)
    const target: DocumentTarget = {
      upsert(index, id, data, version) {
        let inIndex = agent.get(index)
        if (inIndex === undefined) agent.set(index, (inIndex = new Map()))
        inIndex.set(id, { data, version, hash: documentHash(data) })
      },
      remove: (index, id) => void agent.get(index)?.delete(id),
      clean: (index) => void agent.delete(index),
    }
    for (const item of items) applyItem(item, target)
    this.#starts.set(`${session.agentId}\0${session.module}`, session.start)
  }

  discard(session: SyncSessionInfo): void {
    this.#staged.delete(session.id)
  }

  checksum(agentId: string, index: string): string {
    const documents = this.#agents.get(agentId)?.get(index)
    return inventoryChecksum(documents === undefined ? [] : [...documents.values()].map((document) => document.hash))
  }

  /** An agent's documents (index → id → document); empty when it has synced nothing. */
  documents(agentId: string): AgentDocuments {
    return this.#agents.get(agentId) ?? new Map()
  }

  /** The Start of an agent's last completed session of a module: its metadata, groups and global version. */
  lastStart(agentId: string, module: string): Readonly<StartMessage> | undefined {
    return this.#starts.get(`${agentId}\0${module}`)
  }

  /** How many sessions have items staged (not yet committed or discarded). */
  get stagedSessions(): number {
    return this.#staged.size
  }
}
