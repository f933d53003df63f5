// How each program of the bench is started, and on which CPU.
import { join } from 'node:path'
import type { NativeTools } from './native-build.ts'
import type { Pinning, ReceiverId, SenderId } from './options.ts'
import { BATCH_SIZE } from './constants.ts'
import { BenchChild } from './processes.ts'

export interface Launcher {
  /** The CPUs of each side when pinned. */
  cpus: { tested: number; counterpart: number } | null
  receiver(id: ReceiverId): BenchChild
  blaster(port: number, size: number, milliseconds: number): BenchChild
  sink(): BenchChild
  sender(id: SenderId, port: number, size: number, milliseconds: number): BenchChild
}

/** JS programs run as `node --import tsx <file>`: one process, no tsx wrapper process to pin or kill. */
const jsReceivers: Record<Exclude<ReceiverId, 'c-recvmmsg'>, string> = {
  volley: 'receivers/volley.ts',
  dgram: 'receivers/dgram.ts',
  'udx-native': 'receivers/udx-native.ts',
}

const jsSenders: Record<SenderId, string> = {
  volley: 'senders/volley.ts',
  dgram: 'senders/dgram.ts',
}

export const receiverLabels: Record<ReceiverId, string> = {
  volley: 'volley',
  dgram: 'node:dgram',
  'udx-native': 'udx-native',
  'c-recvmmsg': 'C recvmmsg (no JS)',
}

export const senderLabels: Record<SenderId, string> = {
  volley: 'volley send()',
  dgram: 'node:dgram send()',
}

/**
 * Pinning (`split`, the default): the C side (blaster or sink) on CPU 0, the process under test on
 * CPU 1, with all of its threads (taskset sets the affinity before exec; threads inherit it).
 * Why this is the fairest layout on this 2-core machine:
 * - Each side gets exactly one core. volley's process has two busy threads (JS and its I/O thread)
 *   where node:dgram has one; pinned, volley cannot borrow the second core, so its CPU time per packet
 *   and its rate are measured under the same one-core budget as dgram's and the C sink's.
 * - On loopback the sender's core also does the kernel's delivery work (softirq) into the receiver's
 *   socket; pinned apart, that work never lands on the receiver's core.
 * - Unpinned (`--pin=none`), measured on this machine (1 s × 3, 2026-11-21): the scheduler keeps
 *   pulling the woken receiver onto the blaster's core, so both share one core about half the time.
 *   Every rate fell to 165–220 k pkt/s (from 335–395 k pinned), each process got ~50 % of a core, and
 *   node:dgram and udx-native lost 9–12 % at 1200 B. That measures the scheduler, not the receivers.
 */
export function launcher(root: string, tools: NativeTools, pin: Pinning, segments = 1): Launcher {
  const cpu = (side: 'counterpart' | 'tested'): number | undefined => (pin === 'split' ? (side === 'counterpart' ? 0 : 1) : undefined)
  const node = (name: string, file: string, args: readonly string[]): BenchChild =>
    new BenchChild({ name, command: process.execPath, args: ['--import', 'tsx', join('bench', file), ...args], cpu: cpu('tested'), cwd: root })
  return {
    cpus: pin === 'split' ? { tested: 1, counterpart: 0 } : null,
    receiver(id) {
      if (id === 'c-recvmmsg') {
        return new BenchChild({ name: 'C sink (receiver)', command: tools.sink, args: [String(BATCH_SIZE)], cpu: cpu('tested'), cwd: root })
      }
      return node(`${receiverLabels[id]} receiver`, jsReceivers[id], [])
    },
    blaster(port, size, milliseconds) {
      return new BenchChild({
        name: 'C blaster',
        command: tools.blaster,
        args: [String(port), String(size), String(milliseconds), String(BATCH_SIZE), String(segments)],
        cpu: cpu('counterpart'),
        cwd: root,
      })
    },
    sink() {
      return new BenchChild({ name: 'C sink', command: tools.sink, args: [String(BATCH_SIZE)], cpu: cpu('counterpart'), cwd: root })
    },
    sender(id, port, size, milliseconds) {
      return node(`${senderLabels[id]} sender`, jsSenders[id], [String(port), String(size), String(milliseconds)])
    },
  }
}
