// The agent sync schema against flatc (Debian's flatbuffers-compiler): the committed TypeScript is what
// `npm run generate:sync` makes of the schema, and flatc's own C++ reader and builder, given the schema under
// the reference's namespace (Wazuh.SyncSchema: namespaces do not reach the bytes), read our bytes as we
// read them and build bytes we read the same.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { syncMessageSamples } from '../fixtures/sync-messages.ts'
import { SyncEncoder, decodeSyncMessage, type SyncMessage } from '../../src/sessions/sync/wire.ts'

const root = new URL('../..', import.meta.url).pathname
const schema = join(root, 'src/sessions/sync/schema/agent-sync.fbs')
const work = mkdtempSync(join(tmpdir(), 'volley-flatc-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

const flatc = (...args: string[]): string => execFileSync('flatc', args, { cwd: work, encoding: 'utf8' })

/** flatc's JSON, with u64s too large for a double kept exact as strings. */
function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8').replace(/:\s*(\d{16,})/g, ': "$1"')) as Record<string, unknown>
}

describe('agent sync schema and flatc', () => {
  it('npm run generate:sync leaves the committed code as it is', () => {
    const script = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['generate:sync'] as string
    const [command, ...args] = script.split(' ')
    expect(command).toBe('flatc')
    // The script as it stands, writing into a directory of the test's own.
    const out = join(work, 'generated')
    const outAt = args.indexOf('-o') + 1
    expect(outAt).toBeGreaterThan(0)
    args[outAt] = out
    execFileSync('flatc', args, { cwd: root })
    expect(readFileSync(join(out, 'agent-sync_generated.ts'), 'utf8')).toBe(readFileSync(join(root, 'src/sessions/sync/generated/agent-sync_generated.ts'), 'utf8'))
  })

  it('flatc reads our bytes under the reference namespace, and builds bytes that read back the same', () => {
    const reference = join(work, 'reference.fbs')
    const text = readFileSync(schema, 'utf8')
    expect(text).toContain('namespace Volley.Sync;')
    writeFileSync(reference, text.replace('namespace Volley.Sync;', 'namespace Wazuh.SyncSchema;'))
    const encoder = new SyncEncoder()
    for (const message of syncMessageSamples) {
      const name = message.type
      writeFileSync(join(work, `${name}.bin`), encoder.encode(message))
      flatc('--json', '--strict-json', '--raw-binary', '-o', work, reference, '--', `${name}.bin`)
      const json = readJson(join(work, `${name}.json`))
      expect(fromFlatcJson(json), name).toEqual(message)
      // flatc's builder, from that JSON: our reader reads the same message out of its bytes.
      flatc('--binary', '-o', join(work, 'cpp'), reference, join(work, `${name}.json`))
      const built = new Uint8Array(readFileSync(join(work, 'cpp', `${name}.bin`)))
      expect(decodeSyncMessage(built), name).toEqual(message)
    }
  })
})

// flatc's JSON of a Message, as our decoder's objects: its names are the schema's (PascalCase enums,
// snake_case fields), its [byte] vectors signed numbers, and absent fields absent.
const kebab = (name: string): string => name.replace(/^VD/, 'Vd').replace(/[A-Z]/g, (letter, at: number) => (at === 0 ? '' : '-') + letter.toLowerCase())
const big = (value: unknown): bigint => BigInt((value as number | string | undefined) ?? 0)
const num = (value: unknown): number => Number((value as number | string | undefined) ?? 0)
const str = (value: unknown): string => (value as string | undefined) ?? ''
const bytes = (value: unknown): Uint8Array => Uint8Array.from(((value as number[] | undefined) ?? []).map((byte) => byte & 0xff))

function fromFlatcJson(json: Record<string, unknown>): SyncMessage {
  const type = kebab(json.content_type as string)
  const c = json.content as Record<string, unknown>
  const value = (v: Record<string, unknown>) => ({
    type: 'data-value' as const, seq: num(v.seq), session: big(v.session), operation: kebab((v.operation as string | undefined) ?? 'Upsert') as 'upsert' | 'delete',
    id: str(v.id), index: str(v.index), version: big(v.version), data: bytes(v.data),
  })
  switch (type) {
    case 'data-value':
      return value(c)
    case 'data-batch':
      return { type, values: (c.values as Record<string, unknown>[]).map(value) }
    case 'data-context':
      return { type, seq: num(c.seq), session: big(c.session), id: str(c.id), index: str(c.index), data: bytes(c.data) }
    case 'data-clean':
      return { type, seq: num(c.seq), session: big(c.session), index: str(c.index) }
    case 'checksum-module':
      return { type, session: big(c.session), index: str(c.index), checksum: str(c.checksum) }
    case 'start':
      return {
        type, module: str(c.module), mode: kebab((c.mode as string | undefined) ?? 'ModuleFull') as never, size: num(c.size),
        index: (c.index as string[] | undefined) ?? [], option: kebab((c.option as string | undefined) ?? 'Sync') as never,
        architecture: str(c.architecture), hostname: str(c.hostname), osname: str(c.osname), osplatform: str(c.osplatform), ostype: str(c.ostype),
        osversion: str(c.osversion), agentversion: str(c.agentversion), agentname: str(c.agentname), agentid: str(c.agentid),
        groups: (c.groups as string[] | undefined) ?? [], globalVersion: big(c.global_version), clusterName: str(c.cluster_name), clusterNode: str(c.cluster_node),
      }
    case 'start-ack':
    case 'end-ack':
      return { type, status: kebab((c.status as string | undefined) ?? 'Ok') as never, session: big(c.session) }
    case 'end':
      return { type, session: big(c.session) }
    case 'req-ret':
      return { type, ranges: (c.seq as Record<string, unknown>[]).map((pair) => ({ begin: num(pair.begin), end: num(pair.end) })), session: big(c.session) }
  }
  throw new Error(`flatc named a type the schema does not have: ${String(json.content_type)}`)
}
