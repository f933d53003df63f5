// The TypeScript delivery core (src/protocol/delivery/, the fallback engine's) behind the interface of the
// native test binding (native/testing/delivery_binding.cc), so that one suite drives either, or one against the other.
import { DeliveryCore } from '../../src/protocol/delivery/delivery-core.ts'
import { heldMessageBytes, receiveSlotBytes } from '../../src/protocol/delivery/delivery-core.ts'
import { ReassemblyBudget } from '../../src/protocol/delivery/reassembly-budget.ts'
import { ChannelModeCode } from '../../src/protocol/delivery/wire-format.ts'
import { loadSodium } from '../../src/protocol/netcode/sodium.ts'
import type { DeliveryOptions, NativeDeliveryCore } from './simulated-link.ts'

await loadSodium() // the core hashes with it to pick the packet numbers it skips

const modeNames = ['', 'reliable', 'unreliable', 'sequenced'] as const

/** The key the suites' cores skip packet numbers by, unless a test gives its own or null. */
export const testPacketSkipKey = Uint8Array.from({ length: 16 }, (_, i) => 0x51 + i)

/** The options as the test binding takes them: the suites' skip key unless given (null: none). */
export function withPacketSkipKey(options: DeliveryOptions): DeliveryOptions {
  return options.packetSkipKey === undefined ? { ...options, packetSkipKey: testPacketSkipKey } : options
}

/** A TypeScript reassembly budget behind the native binding's interface. */
export class TypescriptBudget {
  readonly budget: ReassemblyBudget
  constructor(limitBytes: number) {
    this.budget = new ReassemblyBudget(limitBytes)
  }
  used(): number {
    return this.budget.used
  }
  evictions(): number {
    return this.budget.evictions
  }
  refusals(): number {
    return this.budget.refusals
  }
}

export function typescriptDeliveryCore(options: DeliveryOptions = {}): NativeDeliveryCore {
  const packets: Uint8Array[] = []
  const messages: { channel: number; data: Uint8Array }[] = []
  const { channels, packetSkipKey, budget, ...rest } = withPacketSkipKey(options)
  if (budget !== undefined && !(budget instanceof TypescriptBudget)) throw new TypeError('options.budget must be a TypescriptBudget')
  const config = Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined))
  const core = new DeliveryCore(
    { ...config, ...(channels === undefined ? {} : { channels: channels.map((mode) => ChannelModeCode[mode]) }) },
    {
      sendPacket: (data) => packets.push(data.slice()),
      // Copied as the binding copies: the suites keep what they take.
      message: (channel, data, owned) => messages.push({ channel, data: owned ? data : data.slice() }),
    },
    packetSkipKey ?? null,
    budget?.budget ?? null,
  )
  return {
    send: (channel, data, nowUs) => {
      // The binding's own check: channels are 0 to 254.
      if (!(channel >= 0 && channel < 255) || !Number.isInteger(channel)) return 'no-channel'
      return core.send(channel, data, nowUs)
    },
    receive: (packet, nowUs) => core.receive(packet, nowUs),
    flush: (nowUs) => core.flush(nowUs),
    update: (nowUs) => core.update(nowUs),
    take: () => ({ packets: packets.splice(0), messages: messages.splice(0) }),
    nextDeadlineUs: (nowUs) => core.nextDeadlineUs(nowUs),
    stats: (nowUs = 0) => {
      const rtt = core.rtt
      return {
        ...core.stats,
        smoothedRttUs: rtt.smoothedUs,
        rttVariationUs: rtt.variationUs,
        rttVarianceUs2: rtt.varianceUs2,
        minRttUs: rtt.minUs,
        pathMinRttUs: rtt.pathMinUs,
        maxRttUs: rtt.maxUs,
        rttSamples: rtt.samples,
        congestionWindow: core.congestionWindow,
        draining: core.draining ? 1 : 0,
        bytesInFlight: core.bytesInFlight,
        queuedBytes: core.queuedBytes,
        queuedMessages: core.queuedMessages,
        reassemblyUsed: core.reassemblyUsed,
        reassemblyHeld: core.reassemblyHeld,
        clockSamples: core.clock.samples,
        sentRecords: core.sentRecords,
        sentRecordsHeld: core.sentRecordsHeld,
        queueSlots: core.queueSlots,
        receiveSlotBytes,
        heldMessageBytes,
        lostRecords: core.lostRecords,
        spareBytes: 0,
        budgetHeld: core.budgetHeld,
        jitterUs: rtt.jitterUs,
        bandwidthBytesPerSec: core.bandwidthBytesPerUs * 1e6,
        clockOffsetUs: core.clock.offsetUs(nowUs),
        clockErrorBoundUs: core.clock.errorBoundUs(nowUs),
        countsAgree: core.countsAgree(),
      }
    },
    peerSettings: () => {
      const peer = core.peerSettings
      return peer.known ? { maxMessageBytes: peer.maxMessageBytes, channels: peer.channels.map((mode) => modeNames[mode]) as ('reliable' | 'unreliable' | 'sequenced')[] } : null
    },
    mismatch: () => (['none', 'channel-modes', 'no-delivery-layer'] as const)[core.mismatch],
    announceSettings: (nowUs, copies) => core.announceSettings(nowUs, Math.min(16, Math.max(0, copies))),
    stalled: () => core.stalled,
  }
}
