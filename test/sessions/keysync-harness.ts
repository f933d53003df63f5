// A bench for the SAE key sync on a fake clock: a master and a slave joined by an in-memory link (with an
// optional filter to lose messages), a KME double that gives each key once, and a puppet: a raw end of a
// link that a test plays by hand, to send what no honest peer would.
import { randomBytes, randomUUID } from 'node:crypto'
import { FakeClock } from '../../src/sessions/timers.ts'
import { MemoryTransport } from '../../src/sessions/transport.ts'
import { MemoryKeyStore, type KeyPersona } from '../../src/sessions/keysync/keys.ts'
import { TransportLink, parseJsonBytes } from '../../src/sessions/keysync/link.ts'
import { KeySyncMaster, type KeySyncMasterOptions } from '../../src/sessions/keysync/master.ts'
import { KeySyncSlave, type KeySyncSlaveOptions } from '../../src/sessions/keysync/slave.ts'
import type { DeliveredKey } from '../../src/sessions/keysync/role.ts'

export { drive, settle } from './sync-harness.ts'

export const MASTER = 'sae-master'
export const SLAVE = 'sae-slave'
/** The fake wall clock's start: 2027-01-15, epoch ms. */
export const EPOCH_START = 1_800_000_000_000

/** A KME pair as the two SAEs see it: the master's Get key draws fresh keys; the slave's Get key with key IDs gives each once. */
export class KmeDouble {
  readonly #delivered = new Map<string, Uint8Array>()
  getKeysCalls = 0
  getKeysWithIdsCalls = 0
  failNext: Error | undefined
  /** While set, Get key with key IDs waits for it. */
  gate: Promise<void> | undefined

  async getKeys(_slave: string, request: { number: number }): Promise<{ keys: DeliveredKey[] }> {
    this.getKeysCalls++
    if (this.failNext !== undefined) throw this.#takeFailure()
    const keys: DeliveredKey[] = []
    for (let i = 0; i < request.number; i++) {
      const key = { keyId: randomUUID(), key: new Uint8Array(randomBytes(32)) }
      this.#delivered.set(key.keyId, new Uint8Array(key.key))
      keys.push(key)
    }
    return { keys }
  }

  async getKeysWithIds(_master: string, keyIds: readonly string[]): Promise<{ keys: DeliveredKey[] }> {
    this.getKeysWithIdsCalls++
    if (this.gate !== undefined) await this.gate
    if (this.failNext !== undefined) throw this.#takeFailure()
    const keys: DeliveredKey[] = []
    for (const keyId of keyIds) {
      const key = this.#delivered.get(keyId)
      if (key === undefined) throw new Error('one or more keys specified are not found on KME')
      this.#delivered.delete(keyId)
      keys.push({ keyId, key })
    }
    return { keys }
  }

  #takeFailure(): Error {
    const error = this.failNext!
    this.failNext = undefined
    return error
  }
}

export interface KeySyncBenchOptions {
  master?: Partial<KeySyncMasterOptions>
  slave?: Partial<KeySyncSlaveOptions>
  /** Sees each message as it is sent ('a': the master's); false drops it. */
  filter?: (message: Record<string, unknown>, from: 'a' | 'b') => boolean
}

export class KeySyncBench {
  readonly clock = new FakeClock(0)
  readonly epochMs = (): number => EPOCH_START + this.clock.now()
  readonly kme = new KmeDouble()
  readonly masterStore = new MemoryKeyStore()
  readonly slaveStore = new MemoryKeyStore()
  readonly master: KeySyncMaster
  readonly slave: KeySyncSlave
  /** Every message sent, in order, with its sender. */
  readonly log: Array<{ from: 'master' | 'slave'; message: Record<string, unknown> }> = []

  constructor(options: KeySyncBenchOptions = {}) {
    const filter = (data: Uint8Array, from: 'a' | 'b'): boolean => {
      const message = parseJsonBytes(data) as Record<string, unknown>
      this.log.push({ from: from === 'a' ? 'master' : 'slave', message })
      return options.filter?.(message, from) ?? true
    }
    const [masterLink, slaveLink] = TransportLink.pair({ filter })
    const common = { scheduler: this.clock, epochMs: this.epochMs }
    this.master = new KeySyncMaster({ saeId: MASTER, peerSaeId: SLAVE, link: masterLink, kme: this.kme, store: this.masterStore, rotationDelayMs: 300_000, ...common, ...options.master })
    this.slave = new KeySyncSlave({ saeId: SLAVE, peerSaeId: MASTER, link: slaveLink, kme: this.kme, store: this.slaveStore, prepareMs: 120_000, ...common, ...options.slave })
  }

  /** The message types sent, in order, with their senders' initials ("M key_notification"). */
  types(): string[] {
    return this.log.map(({ from, message }) => `${from === 'master' ? 'M' : 'S'} ${String(message['message_type'])}`)
  }
}

/** One end of a link played by hand: what it received, and raw sends. */
export class Puppet {
  readonly received: Array<Record<string, unknown>> = []
  readonly #raw: MemoryTransport
  readonly link: TransportLink

  constructor() {
    const [role, raw] = MemoryTransport.pair()
    this.link = new TransportLink(role)
    this.#raw = raw
    raw.on('message', (data) => this.received.push(parseJsonBytes(data) as Record<string, unknown>))
  }

  /** Sends any value as JSON (or a string as it is). */
  send(value: unknown): void {
    this.#raw.send(new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value)))
  }

  /** The ERROR messages received. */
  errors(): Array<Record<string, unknown>> {
    return this.received.filter((message) => message['message_type'] === 'error')
  }
}

/** A persona that fails for the keys named. */
export function failingPersona(failFor: ReadonlySet<string>, deleted: string[] = []): KeyPersona {
  return {
    deleteKey(keyId: string) {
      if (failFor.has(keyId)) throw new Error('device refused')
      deleted.push(keyId)
    },
  }
}
