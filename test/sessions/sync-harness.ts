// A bench for agent sync on a fake clock: an agent and a manager joined by an in-memory transport pair
// (with an optional filter: loss, or a hand-played manager), and drive(), which runs the protocol in fake
// time as fast as the promises settle.
import { expect } from 'vitest'
import { FakeClock } from '../../src/sessions/timers.ts'
import { MemoryTransport } from '../../src/sessions/transport.ts'
import { SyncAgent, type SyncAgentOptions } from '../../src/sessions/sync/agent.ts'
import { SyncManager, type SyncManagerOptions } from '../../src/sessions/sync/manager.ts'
import type { AgentDocuments } from '../../src/sessions/sync/sink.ts'
import { SyncEncoder, decodeSyncMessage, type SyncMessage } from '../../src/sessions/sync/wire.ts'

export const INDEX = 'wazuh-states-inventory-packages'
export const OTHER_INDEX = 'wazuh-states-inventory-ports'
export const metadata = { agentid: '007', groups: ['default'], hostname: 'edge-7', agentname: 'edge-7' }

/** Lets promises, and what they start, settle (a few event-loop turns). */
export async function settle(): Promise<void> {
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
}

/**
 * Runs until `promise` settles: settles what is pending, then moves the clock to the next timer, again and
 * again, for at most `limitMs` of fake time. Returns its value.
 */
export async function drive<T>(clock: FakeClock, promise: Promise<T>, limitMs = 3_600_000): Promise<T> {
  let done = false
  promise.then(() => (done = true), () => (done = true))
  const limit = clock.now() + limitMs
  for (;;) {
    await settle()
    if (done) return promise
    const next = clock.nextDeadline
    if (next === Infinity || next > limit) throw new Error(`drive(): nothing left to run at ${clock.now()} ms, and the promise is pending`)
    clock.advanceTo(next)
  }
}

/** What one side sent, decoded, in order. */
export function tap(transport: MemoryTransport): SyncMessage[] {
  const seen: SyncMessage[] = []
  transport.on('message', (data) => {
    const message = decodeSyncMessage(data)
    if (message.type !== 'malformed') seen.push(message)
  })
  return seen
}

export interface SyncBenchOptions {
  agent?: Partial<SyncAgentOptions>
  manager?: SyncManagerOptions
  /** Sees each message as it is sent ('a': the agent's side); false drops it. */
  filter?: (data: Uint8Array, from: 'a' | 'b') => boolean
}

export class SyncBench {
  readonly clock = new FakeClock(1_000_000)
  readonly agent: SyncAgent
  readonly manager: SyncManager
  readonly agentSide: MemoryTransport
  readonly managerSide: MemoryTransport
  /** What the agent sent and what the manager sent, decoded. */
  readonly fromAgent: SyncMessage[]
  readonly fromManager: SyncMessage[]

  constructor(options: SyncBenchOptions = {}) {
    const [agentSide, managerSide] = MemoryTransport.pair(options.filter === undefined ? {} : { filter: options.filter })
    this.agentSide = agentSide
    this.managerSide = managerSide
    this.fromAgent = tap(managerSide)
    this.fromManager = tap(agentSide)
    this.manager = new SyncManager({ scheduler: this.clock, ...options.manager })
    this.manager.accept(managerSide)
    this.agent = new SyncAgent({ module: 'syscollector', metadata, scheduler: this.clock, ...options.agent })
    this.agent.attach(agentSide)
  }

  run<T>(promise: Promise<T>, limitMs?: number): Promise<T> {
    return drive(this.clock, promise, limitMs)
  }

  /** The agent's documents as the manager's memory sink holds them: index → id → data as text. */
  copy(agentId = metadata.agentid): Record<string, Record<string, string>> {
    const sink = this.manager.sink as unknown as { documents(agentId: string): AgentDocuments }
    const out: Record<string, Record<string, string>> = {}
    for (const [index, documents] of sink.documents(agentId)) {
      out[index] = Object.fromEntries([...documents].map(([id, document]) => [id, new TextDecoder().decode(document.data)]))
    }
    return out
  }
}

/**
 * A manager played by hand: an agent attached to one side of a pair, the test answering on the other.
 * `answer` sees each message the agent sends and returns the replies to send back at once.
 */
export class HandPlayed {
  readonly clock = new FakeClock(1_000_000)
  readonly agent: SyncAgent
  readonly far: MemoryTransport
  readonly received: SyncMessage[] = []
  readonly #encoder = new SyncEncoder()
  answer: (message: SyncMessage) => SyncMessage[] = () => []

  /** `datagrams`: the agent's transport says it loses messages (reliable false), as an unreliable channel's does. */
  constructor(options: Partial<SyncAgentOptions> = {}, datagrams = false) {
    const [near, far] = MemoryTransport.pair()
    if (datagrams) Object.defineProperty(near, 'reliable', { value: false })
    this.far = far
    far.on('message', (data) => {
      const message = decodeSyncMessage(data)
      expect(message.type).not.toBe('malformed')
      if (message.type === 'malformed') return
      this.received.push(message)
      for (const reply of this.answer(message)) this.send(reply)
    })
    this.agent = new SyncAgent({ module: 'syscollector', metadata, scheduler: this.clock, syncEndDelayMs: 0, ...options })
    this.agent.attach(near)
  }

  send(message: SyncMessage): void {
    this.far.send(this.#encoder.encode(message).slice())
  }

  /** The types the agent sent, in order. */
  types(): string[] {
    return this.received.map((message) => message.type)
  }

  run<T>(promise: Promise<T>, limitMs?: number): Promise<T> {
    return drive(this.clock, promise, limitMs)
  }
}
