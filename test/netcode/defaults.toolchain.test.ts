// The connection defaults are written once in each language: native/protocol/netcode/constants.h for the cores'
// configs, src/protocol/netcode/constants.ts for Server, Client and the command line. The two must agree.
import { describe, expect, it } from 'vitest'
import { loadTestingAddon } from '../testing-addon.ts'
import { netcodeDefaults } from '../../src/protocol/netcode/constants.ts'

describe('netcode defaults', () => {
  it("are the native cores' own: a default ServerConfig's and ClientConfig's", () => {
    const native = loadTestingAddon().netcode.defaults
    const us = (ms: number): number => ms * 1000
    expect(native).toEqual({
      requestIntervalUs: us(netcodeDefaults.requestIntervalMs),
      keepAliveIntervalUs: us(netcodeDefaults.keepAliveIntervalMs),
      clientKeepAliveIntervalUs: us(netcodeDefaults.keepAliveIntervalMs),
      disconnectIntervalUs: us(netcodeDefaults.disconnectIntervalMs),
      clientDisconnectIntervalUs: us(netcodeDefaults.disconnectIntervalMs),
      disconnectPackets: netcodeDefaults.disconnectPackets,
      clientDisconnectPackets: netcodeDefaults.disconnectPackets,
      maxClients: netcodeDefaults.maxClients,
    })
  })
})
