// The wire of agent sync (research §B.1): one FlatBuffer per message, a Message whose union holds one of ten
// tables. Building and reading go through the code flatc generated from schema/agent-sync.fbs; a received
// buffer is verified (verify.ts) before anything reads it, and decodes to a plain object, or to a
// MalformedSyncMessage that says why not. Decoding never throws on bytes.
import { Builder, ByteBuffer } from 'flatbuffers'
import {
  ChecksumModule, DataBatch, DataClean, DataContext, DataValue, End, EndAck, Message, MessageType, Pair, ReqRet, Start, StartAck,
} from './generated/agent-sync_generated.ts'
import { verifyBuffer, type FieldShape, type TableShape, type VerifyFailure } from './verify.ts'

// The schema's enums as names, in wire order (the index is the wire value).
export const syncModes = ['module-full', 'module-delta', 'module-check', 'metadata-delta', 'metadata-check', 'group-delta', 'group-check'] as const
export const syncStatuses = ['ok', 'error', 'offline', 'checksum-mismatch', 'processing'] as const
export const syncOperations = ['upsert', 'delete'] as const
export const syncOptions = ['sync', 'vd-first', 'vd-sync'] as const
export type SyncMode = (typeof syncModes)[number]
export type SyncStatus = (typeof syncStatuses)[number]
export type SyncOperation = (typeof syncOperations)[number]
export type SyncOption = (typeof syncOptions)[number]

/** An inclusive range of sequence numbers. */
export interface SeqRange {
  begin: number
  end: number
}

// Sequence numbers and sizes are u64 on the wire and numbers here: a value past 2^53 - 1 reads as a number
// at least 2^53, which no session's size admits, so it is refused as out of range rather than misread.
// Session ids are random u64s and stay bigints.

export interface DataValueMessage {
  type: 'data-value'
  seq: number
  session: bigint
  operation: SyncOperation
  id: string
  index: string
  version: bigint
  /** A view into the received buffer (copy it to keep it past the message's handling). */
  data: Uint8Array
}

export interface DataContextMessage {
  type: 'data-context'
  seq: number
  session: bigint
  id: string
  index: string
  data: Uint8Array
}

export interface StartMessage {
  type: 'start'
  module: string
  mode: SyncMode
  size: number
  index: string[]
  option: SyncOption
  architecture: string
  hostname: string
  osname: string
  osplatform: string
  ostype: string
  osversion: string
  agentversion: string
  agentname: string
  agentid: string
  groups: string[]
  globalVersion: bigint
  clusterName: string
  clusterNode: string
}

export interface StartAckMessage {
  type: 'start-ack'
  status: SyncStatus
  session: bigint
}

export interface EndMessage {
  type: 'end'
  session: bigint
}

export interface EndAckMessage {
  type: 'end-ack'
  status: SyncStatus
  session: bigint
}

export interface ReqRetMessage {
  type: 'req-ret'
  ranges: SeqRange[]
  session: bigint
}

export interface DataCleanMessage {
  type: 'data-clean'
  seq: number
  session: bigint
  index: string
}

export interface ChecksumModuleMessage {
  type: 'checksum-module'
  session: bigint
  index: string
  checksum: string
}

export interface DataBatchMessage {
  type: 'data-batch'
  values: DataValueMessage[]
}

export type SyncMessage =
  | DataValueMessage
  | DataCleanMessage
  | ChecksumModuleMessage
  | StartMessage
  | StartAckMessage
  | EndMessage
  | EndAckMessage
  | ReqRetMessage
  | DataContextMessage
  | DataBatchMessage

/** Why a buffer is not a message: a verification failure, or a sound buffer whose content is not one. */
export type MalformedReason = VerifyFailure | 'no-content' | 'bad-enum'

export interface MalformedSyncMessage {
  type: 'malformed'
  reason: MalformedReason
}

// The tables' shapes for the verifier, slot for slot as in schema/agent-sync.fbs.
const string = 'string'
const u64 = 'uint64'
const i8 = 'int8'
const dataValueShape: TableShape = { name: 'DataValue', fields: [u64, u64, i8, string, string, u64, 'bytes'] }
const pairShape: TableShape = { name: 'Pair', fields: [u64, u64] }
const members: readonly (TableShape | null)[] = [
  null,
  dataValueShape,
  { name: 'DataClean', fields: [u64, u64, string] },
  { name: 'ChecksumModule', fields: [u64, string, string] },
  {
    name: 'Start',
    fields: [string, i8, u64, 'strings', i8, string, string, string, string, string, string, string, string, string, 'strings', u64, string, string],
  },
  { name: 'StartAck', fields: [i8, u64] },
  { name: 'End', fields: [u64] },
  { name: 'EndAck', fields: [i8, u64] },
  { name: 'ReqRet', fields: [{ tables: () => pairShape }, u64] },
  { name: 'DataContext', fields: [u64, u64, string, string, 'bytes'] },
  { name: 'DataBatch', fields: [{ tables: () => dataValueShape }] },
]
const contentField: FieldShape = { union: () => members }
/** The root table's shape; with the others, exported for the test that holds them to the generated code. */
export const messageShape: TableShape = { name: 'Message', fields: [i8, contentField] }
export const memberShapes = members

class BadEnum {}
function named<T>(names: readonly T[], value: number): T {
  const name = names[value]
  if (name === undefined) throw new BadEnum()
  return name
}

/** Reads one received buffer: the message, or why it is malformed. Never throws on bytes. */
export function decodeSyncMessage(bytes: Uint8Array): SyncMessage | MalformedSyncMessage {
  const failure = verifyBuffer(bytes, messageShape)
  if (failure !== null) return { type: 'malformed', reason: failure }
  const message = Message.getRootAsMessage(new ByteBuffer(bytes))
  try {
    return readContent(message) ?? { type: 'malformed', reason: 'no-content' }
  } catch (error) {
    if (error instanceof BadEnum) return { type: 'malformed', reason: 'bad-enum' }
    throw error
  }
}

function readContent(message: Message): SyncMessage | null {
  switch (message.contentType()) {
    case MessageType.DataValue: {
      const table = message.content(new DataValue()) as DataValue | null
      return table && readDataValue(table)
    }
    case MessageType.DataContext: {
      const table = message.content(new DataContext()) as DataContext | null
      if (table === null) return null
      return { type: 'data-context', seq: Number(table.seq()), session: table.session(), id: text(table.id()), index: text(table.index()), data: bytesOf(table.dataArray()) }
    }
    case MessageType.DataClean: {
      const table = message.content(new DataClean()) as DataClean | null
      if (table === null) return null
      return { type: 'data-clean', seq: Number(table.seq()), session: table.session(), index: text(table.index()) }
    }
    case MessageType.ChecksumModule: {
      const table = message.content(new ChecksumModule()) as ChecksumModule | null
      if (table === null) return null
      return { type: 'checksum-module', session: table.session(), index: text(table.index()), checksum: text(table.checksum()) }
    }
    case MessageType.Start: {
      const table = message.content(new Start()) as Start | null
      return table && readStart(table)
    }
    case MessageType.StartAck: {
      const table = message.content(new StartAck()) as StartAck | null
      if (table === null) return null
      return { type: 'start-ack', status: named(syncStatuses, table.status()), session: table.session() }
    }
    case MessageType.End: {
      const table = message.content(new End()) as End | null
      if (table === null) return null
      return { type: 'end', session: table.session() }
    }
    case MessageType.EndAck: {
      const table = message.content(new EndAck()) as EndAck | null
      if (table === null) return null
      return { type: 'end-ack', status: named(syncStatuses, table.status()), session: table.session() }
    }
    case MessageType.ReqRet: {
      const table = message.content(new ReqRet()) as ReqRet | null
      if (table === null) return null
      const ranges: SeqRange[] = []
      const pair = new Pair()
      for (let i = 0, count = table.seqLength(); i < count; i++) {
        table.seq(i, pair)
        ranges.push({ begin: Number(pair.begin()), end: Number(pair.end()) })
      }
      return { type: 'req-ret', ranges, session: table.session() }
    }
    case MessageType.DataBatch: {
      const table = message.content(new DataBatch()) as DataBatch | null
      if (table === null) return null
      const values: DataValueMessage[] = []
      const value = new DataValue()
      for (let i = 0, count = table.valuesLength(); i < count; i++) values.push(readDataValue(table.values(i, value)!))
      return { type: 'data-batch', values }
    }
    default:
      return null // NONE (the verifier refuses a type the union does not have)
  }
}

function readDataValue(table: DataValue): DataValueMessage {
  return {
    type: 'data-value',
    seq: Number(table.seq()),
    session: table.session(),
    operation: named(syncOperations, table.operation()),
    id: text(table.id()),
    index: text(table.index()),
    version: table.version(),
    data: bytesOf(table.dataArray()),
  }
}

function readStart(table: Start): StartMessage {
  const index: string[] = []
  for (let i = 0, count = table.indexLength(); i < count; i++) index.push(text(table.index(i)))
  const groups: string[] = []
  for (let i = 0, count = table.groupsLength(); i < count; i++) groups.push(text(table.groups(i)))
  return {
    type: 'start',
    module: text(table.module()),
    mode: named(syncModes, table.mode()),
    size: Number(table.size()),
    index,
    option: named(syncOptions, table.option()),
    architecture: text(table.architecture()),
    hostname: text(table.hostname()),
    osname: text(table.osname()),
    osplatform: text(table.osplatform()),
    ostype: text(table.ostype()),
    osversion: text(table.osversion()),
    agentversion: text(table.agentversion()),
    agentname: text(table.agentname()),
    agentid: text(table.agentid()),
    groups,
    globalVersion: table.globalVersion(),
    clusterName: text(table.clusterName()),
    clusterNode: text(table.clusterNode()),
  }
}

/** An absent string reads as the empty one (the schema has no required fields). */
function text(value: string | Uint8Array | null): string {
  return typeof value === 'string' ? value : ''
}

function bytesOf(data: Int8Array | null): Uint8Array {
  return data === null ? new Uint8Array(0) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

/** Estimated bytes of one DataValue in a DataBatch (the reference's estimate: 80 + its strings and data). */
export function estimatedValueBytes(value: { id: string; index: string; data: Uint8Array }): number {
  return 80 + Buffer.byteLength(value.id) + Buffer.byteLength(value.index) + value.data.byteLength
}
/** Estimated bytes of a DataBatch around its values. */
export const BATCH_OVERHEAD_BYTES = 128

/**
 * Builds messages. One encoder reuses one builder: the bytes encode() returns are a view that the next
 * encode() overwrites, so send (or copy) them first.
 */
export class SyncEncoder {
  readonly #builder = new Builder(1024)

  encode(message: SyncMessage): Uint8Array {
    const builder = this.#builder
    builder.clear()
    const [type, content] = this.#content(message)
    Message.finishMessageBuffer(builder, Message.createMessage(builder, type, content))
    return builder.asUint8Array()
  }

  #content(message: SyncMessage): [MessageType, number] {
    const builder = this.#builder
    switch (message.type) {
      case 'data-value':
        return [MessageType.DataValue, this.#dataValue(message)]
      case 'data-batch': {
        const offsets = message.values.map((value) => this.#dataValue(value))
        return [MessageType.DataBatch, DataBatch.createDataBatch(builder, DataBatch.createValuesVector(builder, offsets))]
      }
      case 'data-context': {
        const id = builder.createSharedString(message.id)
        const index = builder.createSharedString(message.index)
        const data = builder.createByteVector(message.data)
        return [MessageType.DataContext, DataContext.createDataContext(builder, BigInt(message.seq), message.session, id, index, data)]
      }
      case 'data-clean': {
        const index = builder.createString(message.index)
        return [MessageType.DataClean, DataClean.createDataClean(builder, BigInt(message.seq), message.session, index)]
      }
      case 'checksum-module': {
        const index = builder.createString(message.index)
        const checksum = builder.createString(message.checksum)
        return [MessageType.ChecksumModule, ChecksumModule.createChecksumModule(builder, message.session, index, checksum)]
      }
      case 'start':
        return [MessageType.Start, this.#start(message)]
      case 'start-ack':
        return [MessageType.StartAck, StartAck.createStartAck(builder, syncStatuses.indexOf(message.status), message.session)]
      case 'end':
        return [MessageType.End, End.createEnd(builder, message.session)]
      case 'end-ack':
        return [MessageType.EndAck, EndAck.createEndAck(builder, syncStatuses.indexOf(message.status), message.session)]
      case 'req-ret': {
        const pairs = message.ranges.map((range) => Pair.createPair(builder, BigInt(range.begin), BigInt(range.end)))
        return [MessageType.ReqRet, ReqRet.createReqRet(builder, ReqRet.createSeqVector(builder, pairs), message.session)]
      }
    }
  }

  #dataValue(value: DataValueMessage): number {
    const builder = this.#builder
    // Shared strings: the values of a batch mostly name the same index, written once.
    const id = builder.createString(value.id)
    const index = builder.createSharedString(value.index)
    const data = builder.createByteVector(value.data)
    return DataValue.createDataValue(
      builder, BigInt(value.seq), value.session, syncOperations.indexOf(value.operation), id, index, value.version, data,
    )
  }

  #start(start: StartMessage): number {
    const builder = this.#builder
    // Empty strings and lists are left out (offset 0), as the reader takes an absent one for empty.
    const s = (value: string): number => (value === '' ? 0 : builder.createString(value))
    const strings = (values: readonly string[]): number[] => values.map((value) => builder.createString(value))
    const index = start.index.length === 0 ? 0 : Start.createIndexVector(builder, strings(start.index))
    const groups = start.groups.length === 0 ? 0 : Start.createGroupsVector(builder, strings(start.groups))
    return Start.createStart(
      builder, s(start.module), syncModes.indexOf(start.mode), BigInt(start.size), index, syncOptions.indexOf(start.option),
      s(start.architecture), s(start.hostname), s(start.osname), s(start.osplatform), s(start.ostype), s(start.osversion),
      s(start.agentversion), s(start.agentname), s(start.agentid), groups, start.globalVersion, s(start.clusterName), s(start.clusterNode),
    )
  }
}
