// The wire of agent sync: golden bytes of one message of each kind, the verifier's refusals of broken
// buffers, and its table shapes held to the code flatc generated (test/sessions/sync-flatc.toolchain.test.ts
// checks the bytes against flatc's own reader and builder).
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../helpers.ts'
import { syncMessageSamples } from '../fixtures/sync-messages.ts'
import {
  SyncEncoder, decodeSyncMessage, memberShapes, messageShape, type SyncMessage,
} from '../../src/sessions/sync/wire.ts'
import type { FieldShape, TableShape } from '../../src/sessions/sync/verify.ts'

const golden: Record<SyncMessage['type'], string> = {
  'data-value': '0c00000008000a00090004000800000018000000000112003000280020001f001800140008000400120000002c0000000700000000000000000000002800000048000000000000018897a6b5c4d3e2f12900000000000000050000007b7d00ff800000001f00000077617a75682d7374617465732d696e76656e746f72792d7061636b61676573000b000000706b672d6f70656e73736c00',
  'data-clean': '0c00000008000a0009000400080000001000000000020a001c001000080004000a000000180000008897a6b5c4d3e2f10300000000000000000000001600000077617a75682d7374617465732d66696d2d66696c65730000',
  'checksum-module': '100000000000000008000a0009000400080000001000000000030a0014000c00080004000a000000100000003c0000008897a6b5c4d3e2f12800000061393461386665356363623139626136316334633038373364333931653938373938326662626433000000001000000077617a75682d7374617465732d73636100000000',
  'start': '100000000000000008000c000b0004000800000030000000000000042800580054005300440040003f003800340030002c002800240020001c00180014000c000800040028000000540000005c0000000c00000000000000e0000000580000005c000000640000006c000000700000007800000080000000940000009c00000000000002d800000040420f000000000000000000000000018c000000060000006e6f64652d31000006000000766f6c6c65790000030000003034320007000000656467652d3037000600000076352e302e3000000200000031320000050000006c696e75780000000600000064656269616e00001000000044656269616e20474e552f4c696e75780000000007000000656467652d303700060000007838365f363400000c000000737973636f6c6c6563746f72000000000200000014000000040000000400000065646765000000000700000064656661756c7400020000002c000000040000001c00000077617a75682d7374617465732d696e76656e746f72792d706f727473000000001f00000077617a75682d7374617465732d696e76656e746f72792d7061636b6167657300',
  'start-ack': '100000000000000008000c000b0004000800000010000000000000050800140013000400080000008897a6b5c4d3e2f10000000000000002',
  'end': '0c00000008000a0009000400080000000c000000000606000c000400060000008897a6b5c4d3e2f1',
  'end-ack': '100000000000000008000c000b0004000800000010000000000000070800140013000400080000008897a6b5c4d3e2f10000000000000004',
  'req-ret': '100000000000000008000c000b0004000800000010000000000000080800140010000400080000008897a6b5c4d3e2f1000000000400000002000000300000000c000000080018000c000400080000000800000000000000060000000000000000000000080014000c0004000800000003000000000000000100000000000000',
  'data-context': '100000000000000008000a0009000400080000001400000000090e002000180010000c00080004000e0000001c00000020000000400000008897a6b5c4d3e2f1090000000000000003000000010203001f00000077617a75682d7374617465732d696e76656e746f72792d7061636b6167657300050000006374782d31000000',
  'data-batch': '100000000000000008000a0009000400080000000c000000000a0600080004000600000004000000020000006c00000018000000000012003000280020001f001800140008000400120000002c0000000200000000000000000000006800000020000000000000018897a6b5c4d3e2f10100000000000000020000005b5d0000010000006200120024000000180000001400100008000400120000002000000001000000000000001c0000003c0000008897a6b5c4d3e2f100000000020000007b7d00001f00000077617a75682d7374617465732d696e76656e746f72792d7061636b61676573000100000061000000',
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'))

// Where things are in a buffer, found the way a reader finds them (the builder decides the layout).
const view = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
/** The position of a table's field in `slot` (the field must be present). */
function fieldAt(bytes: Uint8Array, table: number, slot: number): number {
  const vtable = table - view(bytes).getInt32(table, true)
  const offset = view(bytes).getUint16(vtable + 4 + 2 * slot, true)
  expect(offset).toBeGreaterThan(0)
  return table + offset
}
/** The position an offset field points to. */
const target = (bytes: Uint8Array, at: number): number => at + view(bytes).getUint32(at, true)
const rootOf = (bytes: Uint8Array): number => target(bytes, 0)
/** The Message's content table. */
const contentOf = (bytes: Uint8Array): number => target(bytes, fieldAt(bytes, rootOf(bytes), 1))

describe('agent sync wire', () => {
  const encoder = new SyncEncoder()

  it.each(syncMessageSamples.map((message) => [message.type, message] as const))('%s: builds the golden bytes and reads them back', (type, message) => {
    expect(hex(encoder.encode(message))).toBe(golden[type])
    expect(decodeSyncMessage(fromHex(golden[type]))).toEqual(message)
  })

  it('reads absent fields as their defaults: a Message with no content is malformed, an empty table is all defaults', () => {
    // Message { content_type: End, content: End {} }: the session is absent, so 0.
    const empty = encoder.encode({ type: 'end', session: 0n }).slice()
    expect(decodeSyncMessage(empty)).toEqual({ type: 'end', session: 0n })
    // The same buffer with its union type cleared: NONE, no content.
    const none = empty.slice()
    none[fieldAt(none, rootOf(none), 0)] = 0
    expect(decodeSyncMessage(none)).toEqual({ type: 'malformed', reason: 'no-content' })
  })

  it('refuses a union type the schema does not have, and an enum value out of range', () => {
    const end = fromHex(golden.end)
    const typeAt = fieldAt(end, rootOf(end), 0)
    expect(end[typeAt]).toBe(6)
    const unknown = end.slice()
    unknown[typeAt] = 11
    expect(decodeSyncMessage(unknown)).toEqual({ type: 'malformed', reason: 'unknown-union-type' })
    unknown[typeAt] = 255
    expect(decodeSyncMessage(unknown)).toEqual({ type: 'malformed', reason: 'unknown-union-type' })

    const ack = fromHex(golden['start-ack'])
    const statusAt = fieldAt(ack, contentOf(ack), 0)
    expect(ack[statusAt]).toBe(2) // offline
    ack[statusAt] = 5
    expect(decodeSyncMessage(ack)).toEqual({ type: 'malformed', reason: 'bad-enum' })
  })

  it('refuses truncated buffers and broken offsets with a reason', () => {
    const start = fromHex(golden.start)
    expect(decodeSyncMessage(new Uint8Array(0))).toEqual({ type: 'malformed', reason: 'too-short' })
    expect(decodeSyncMessage(start.subarray(0, 7))).toEqual({ type: 'malformed', reason: 'too-short' })
    for (const cut of [8, 20, 60, start.length - 1]) {
      expect(decodeSyncMessage(start.subarray(0, cut)).type).toBe('malformed')
    }
    const rootPastEnd = start.slice()
    new DataView(rootPastEnd.buffer).setUint32(0, rootPastEnd.length, true)
    expect(decodeSyncMessage(rootPastEnd)).toEqual({ type: 'malformed', reason: 'out-of-bounds' })
    const misaligned = start.slice()
    new DataView(misaligned.buffer).setUint32(0, 17, true)
    expect(decodeSyncMessage(misaligned)).toEqual({ type: 'malformed', reason: 'misaligned' })
  })

  it('refuses a string without its terminating zero and a vector longer than the buffer', () => {
    const clean = fromHex(golden['data-clean'])
    const indexAt = target(clean, fieldAt(clean, contentOf(clean), 2))
    const terminatorAt = indexAt + 4 + view(clean).getUint32(indexAt, true)
    expect(clean[terminatorAt]).toBe(0)
    const unterminated = clean.slice()
    unterminated[terminatorAt] = 0x41
    expect(decodeSyncMessage(unterminated)).toEqual({ type: 'malformed', reason: 'bad-string' })

    // A DataBatch whose values vector claims 2^30 items: refused at once, not walked.
    const batch = fromHex(golden['data-batch'])
    const countAt = target(batch, fieldAt(batch, contentOf(batch), 0))
    expect(view(batch).getUint32(countAt, true)).toBe(2)
    view(batch).setUint32(countAt, 1 << 30, true)
    expect(decodeSyncMessage(batch)).toEqual({ type: 'malformed', reason: 'out-of-bounds' })
  })

  it('never throws on mutated buffers, and what it accepts builds back to a buffer that reads the same', () => {
    const random = seededRandom(59)
    const seeds = Object.values(golden).map(fromHex)
    let accepted = 0
    for (let round = 0; round < 20_000; round++) {
      const bytes = seeds[Math.floor(random() * seeds.length)]!.slice()
      const flips = 1 + Math.floor(random() * 4)
      for (let i = 0; i < flips; i++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256)
      const cut = random() < 0.2 ? Math.floor(random() * bytes.length) : bytes.length
      const message = decodeSyncMessage(bytes.subarray(0, cut))
      if (message.type === 'malformed') continue
      accepted++
      expect(decodeSyncMessage(encoder.encode(message).slice())).toEqual(message)
    }
    expect(accepted).toBeGreaterThan(1000)
  })

  it("the verifier's table shapes are the generated code's slots, in the union's order", () => {
    const generated = readFileSync(new URL('../../src/sessions/sync/generated/agent-sync_generated.ts', import.meta.url), 'utf8')
    const slotsOf = (table: string): string[] => {
      const body = generated.split(`export class ${table} {`)[1]!.split('export class')[0]!
      return [...body.matchAll(/builder\.addField(\w+)\((\d+),/g)].map((match) => `${match[2]}:${match[1]}`)
    }
    const kind = (field: FieldShape): string => (field === 'int8' ? 'Int8' : field === 'uint64' ? 'Int64' : 'Offset')
    const unionNames = generated.split('export enum MessageType {')[1]!.split('}')[0]!.match(/\w+(?= =)/g)!
    expect(unionNames[0]).toBe('NONE')
    expect(memberShapes.map((shape) => shape?.name ?? 'NONE')).toEqual(unionNames)
    const reqRetSeq = memberShapes[8]!.fields[0] as { tables: () => TableShape }
    const tables = [messageShape, ...memberShapes.filter((shape) => shape !== null), reqRetSeq.tables()]
    expect(tables.map((table) => table.name).sort()).toEqual([...generated.matchAll(/export class (\w+)/g)].map((match) => match[1]).sort())
    for (const table of tables) {
      expect(table.fields.map((field, slot) => `${slot}:${kind(field)}`), table.name).toEqual(slotsOf(table.name))
    }
  })
})
