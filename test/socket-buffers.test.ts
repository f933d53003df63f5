// Socket buffers past the kernel's caps (net.core.rmem_max, wmem_max): a process with CAP_NET_ADMIN gets the
// size asked (SO_RCVBUFFORCE, SO_SNDBUFFORCE); one without gets the cap, and one VolleyWarning that says
// what was asked, what was granted and the sysctl that raises the cap.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('./fixtures/buffer-sizes.ts', import.meta.url))

interface Report {
  asked: { recv: number; send: number }
  granted: { recvBufferSize: number; sendBufferSize: number }[]
  warnings: { code: string | undefined; message: string }[]
  netAdmin: boolean
  rmemMax: number
  wmemMax: number
}

function run(prefix: string[], env: Record<string, string> = {}): Report {
  const command = [...prefix, process.execPath, '--import', 'tsx', fixture]
  const result = spawnSync(command[0]!, command.slice(1), { timeout: 30_000, killSignal: 'SIGKILL', encoding: 'utf8', env: { ...process.env, ...env } })
  if (result.status !== 0) throw new Error(`${command.join(' ')} exited with ${result.status}: ${result.stderr}`)
  return JSON.parse(result.stdout) as Report
}

describe('socket buffers past the kernel cap', () => {
  let asItIs: Report
  beforeAll(() => {
    asItIs = run([])
  })

  it('as this process is: the size asked with CAP_NET_ADMIN and no warning; else as below', () => {
    if (asItIs.netAdmin) {
      for (const granted of asItIs.granted) expect(granted.recvBufferSize).toBe(2 * asItIs.asked.recv)
      for (const granted of asItIs.granted.slice(0, 2)) expect(granted.sendBufferSize).toBe(2 * asItIs.asked.send)
      expect(asItIs.warnings).toEqual([])
    } else {
      expectCapped(asItIs)
    }
  })

  it('without CAP_NET_ADMIN: the capped size, and one warning naming the sizes and the sysctls', () => {
    // A process that has the capability drops it for the child (setpriv, util-linux): root keeps no
    // capability through exec once its bounding and inheritable sets are empty.
    const report = asItIs.netAdmin ? run(['setpriv', '--bounding-set=-all', '--inh-caps=-all']) : asItIs
    expect(report.netAdmin).toBe(false)
    expectCapped(report)
  })

  it('on the fallback engine: the capped size whatever the capabilities (node:dgram cannot force it), and the warning says so', () => {
    const report = run([], { VOLLEY_ENGINE: 'fallback' })
    expectCapped(report, 'fallback') // it capped them silently
    expect(report.warnings.find((warning) => warning.code === 'VOLLEY_SOCKET_BUFFER_CAPPED')!.message).toContain('The fallback engine cannot go past the cap')
  })
})

describe('the capped-buffer warning elsewhere than Linux (the fallback engine on macOS, say)', () => {
  it('takes the size read back as granted (Linux alone reads back twice it), and names no Linux sysctl', async () => {
    const { reportCappedBuffers } = await import('../src/engine/socket-buffers.ts')
    const warnings: Error[] = []
    const onWarning = (warning: Error): void => {
      warnings.push(warning)
    }
    process.on('warning', onWarning)
    try {
      // 200 KiB granted of 256 KiB asked: more than half, no warning (read as Linux reads, it would be 100 KiB).
      reportCappedBuffers({ receive: 262_144, send: 0 }, { receive: 204_800, send: 0 }, 'fallback', 'darwin')
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings).toEqual([])
      reportCappedBuffers({ receive: 4_194_304, send: 0 }, { receive: 204_800, send: 0 }, 'fallback', 'darwin')
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]!.message).toContain('its receive buffer (SO_RCVBUF) at 200 KiB, not the 4 MiB asked')
      expect(warnings[0]!.message).not.toContain('sysctl')
    } finally {
      process.off('warning', onWarning)
    }
  })
})

function expectCapped(report: Report, engine: 'native' | 'fallback' = 'native'): void {
  for (const granted of report.granted) expect(granted.recvBufferSize).toBe(2 * report.rmemMax)
  for (const granted of report.granted.slice(0, 2)) expect(granted.sendBufferSize).toBe(2 * report.wmemMax)
  const capped = report.warnings.filter((warning) => warning.code === 'VOLLEY_SOCKET_BUFFER_CAPPED')
  expect(capped).toHaveLength(1) // three sockets capped, one warning for the thread
  expect(capped[0]!.message).toContain(`sysctl -w net.core.rmem_max=${report.asked.recv}`)
  expect(capped[0]!.message).toContain(`sysctl -w net.core.wmem_max=${report.asked.send}`)
  if (engine === 'native') expect(capped[0]!.message).toContain('receiveBufferFull') // the fallback cannot count them
}
