// Compiles the native tools of the connections benchmark into bench/.build/ (gitignored) at every
// start, as native-build.ts does for the blaster and the sink: the paced sender (C, with native-build.ts's
// compileCTool), the floor receiver (C, on libsodium) and the
// handshake load (C++, on volley's own netcode client core and libsodium).
import { join } from 'node:path'
import { compileCTool, compileCxxTool } from './native-build.ts'

export function buildPacedSender(benchDir: string): string {
  return compileCTool(benchDir, 'paced-sender')
}

export function buildFloorReceiver(benchDir: string): string {
  return compileCTool(benchDir, 'floor-receiver', ['-pthread', '-lsodium'], 'a C compiler and libsodium-dev are required')
}

export function buildHandshakeLoad(benchDir: string, root: string): string {
  const sources = [
    join(benchDir, 'native', 'handshake-load.cc'),
    ...['protocol/netcode/client.cc', 'protocol/netcode/packet.cc', 'protocol/netcode/connect_token.cc', 'protocol/netcode/server_address.cc', 'protocol/netcode/challenge_token.cc', 'protocol/netcode/aead.cc', 'util/address.cc'].map((file) => join(root, 'native', file)),
  ]
  return compileCxxTool(benchDir, root, 'handshake-load', sources, ['-lsodium'], 'a C++ compiler and libsodium-dev are required')
}
