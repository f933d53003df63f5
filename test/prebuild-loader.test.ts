import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
// @ts-expect-error plain ESM script without declarations
import { prebuildMatchesSources, prebuildPath } from '../scripts/check-prebuild.mjs'
// @ts-expect-error plain ESM script without declarations
import { nativeSourceHash } from '../scripts/source-hash.mjs'

const root = new URL('..', import.meta.url).pathname
const temporary: string[] = []
afterAll(() => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true })
})

/** A copy of these parts of the package in a temporary directory, with this one's node_modules unless told otherwise. */
function packageCopy(prefix: string, parts: string[], withDependencies = true): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  temporary.push(dir)
  for (const part of parts) cpSync(join(root, part), join(dir, part), { recursive: true })
  if (withDependencies) symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

describe('prebuild', () => {
  it('is committed for linux-x64 and built from the current native sources', () => {
    expect(prebuildPath()).toMatch(/prebuilds\/linux-x64\/volley\.glibc\.node$/)
    const report = vi.spyOn(console, 'log').mockImplementation(() => {}) // what the check prints, asserted here
    try {
      expect(prebuildMatchesSources()).toBe(true) // its libraries: test/engine/glibc-baseline.toolchain.test.ts
      expect(report).toHaveBeenCalledWith(expect.stringMatching(/^prebuild check: .*volley\.glibc\.node matches the native sources \([0-9a-f]{32}\)$/))
    } finally {
      report.mockRestore()
    }
  })

  it('is what the loader picks when there is no local build, and it works', () => {
    // A copy of the package without build/: node-gyp-build must fall back to prebuilds/.
    const dir = packageCopy('volley-prebuild-', ['package.json', 'src', 'prebuilds', 'scripts', 'native', 'binding.gyp', 'CMakeLists.txt'])
    const script = `
      import { createDatagramSocket, engineInUse, nativeInfo } from './src/index.ts'
      const s = createDatagramSocket()
      const { port } = await s.bind(0, '127.0.0.1')
      const got = new Promise((resolve) => s.on('messages', (batch) => resolve(Buffer.from(batch[0].data).toString())))
      s.send('through the prebuild', port, '127.0.0.1')
      console.log(JSON.stringify({ info: nativeInfo(), inUse: engineInUse(), got: await got }))
      await s.close()
    `
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const { info, inUse, got } = JSON.parse(out) as { info: { path: string; sourceHash: string; sodiumVersion: string }; inUse: unknown; got: string }
    expect(inUse).toEqual({ engine: 'native', addon: info })
    expect(info.path).toBe(join(dir, 'prebuilds', 'linux-x64', 'volley.glibc.node'))
    expect(info.sourceHash).toBe(nativeSourceHash())
    expect(info.sodiumVersion).toMatch(/^1\.0\.\d+$/)
    expect(got).toBe('through the prebuild')
  })

  it('missing, with no local build either: Server, Client and datagram sockets run on the fallback engine, with one warning that says how to build the addon', () => {
    // The package with no addon for this platform: its WebAssembly cores (prebuilds/wasm/) ship for every one.
    const dir = packageCopy('volley-no-addon-', ['package.json', 'src', 'prebuilds/wasm'])
    const script = `
      import { Client, Server, createDatagramSocket, engineInUse, generateConnectToken, generateKey } from './src/index.ts'
      const warnings = []
      process.on('warning', (warning) => warnings.push({ code: warning.code, message: warning.message }))
      const receiver = createDatagramSocket()
      const { port: datagramPort } = await receiver.bind(0, '127.0.0.1')
      const datagram = new Promise((resolve) => receiver.on('message', (data) => resolve(String(data))))
      const sender = createDatagramSocket()
      sender.send('a datagram through the fallback engine', datagramPort, '127.0.0.1')
      const datagramReceived = await datagram
      await Promise.all([receiver.close(), sender.close()])
      const privateKey = await generateKey()
      const server = new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0' })
      server.on('message', (peer, data) => peer.send(data))
      const { port } = await server.listen()
      const token = await generateConnectToken({ protocolId: 1n, privateKey, clientId: 1n,
        serverAddresses: ['127.0.0.1:' + port], expireSeconds: 30, timeoutSeconds: 5 })
      const client = new Client()
      const echo = new Promise((resolve) => client.on('message', (data) => resolve(Buffer.from(data).toString())))
      await client.connect(token)
      client.send(Buffer.from('through the fallback engine'))
      const echoed = await echo
      await client.close()
      await server.close()
      // Channels too: a 100 kB message each way on a reliable channel, in fragments.
      const channels = [{ mode: 'reliable' }, { mode: 'unreliable' }]
      const channelServer = new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0', channels })
      channelServer.on('message', (peer, data, channel) => peer.send(data.slice().reverse(), { channel }))
      const { port: channelPort } = await channelServer.listen()
      const channelClient = new Client({ channels })
      const reply = new Promise((resolve) => channelClient.on('message', (data, channel) => resolve({ channel, bytes: data.byteLength, first: data[0], last: data[data.byteLength - 1] })))
      await channelClient.connect(await generateConnectToken({ protocolId: 1n, privateKey, clientId: 2n,
        serverAddresses: ['127.0.0.1:' + channelPort], expireSeconds: 30, timeoutSeconds: 5 }))
      const message = new Uint8Array(100_000).map((_, i) => i % 251)
      channelClient.send(message, { channel: 0 })
      const channelEcho = await reply
      await channelClient.close()
      await channelServer.close()
      console.log(JSON.stringify({ datagramReceived, echoed, channelEcho, warnings, inUse: engineInUse() }))
    `
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] })
    const outcomes = JSON.parse(out) as Record<string, unknown>
    expect(outcomes).toEqual({
      datagramReceived: 'a datagram through the fallback engine',
      echoed: 'through the fallback engine',
      channelEcho: { channel: 0, bytes: 100_000, first: 99_999 % 251, last: 0 },
      inUse: { engine: 'fallback', reason: 'the native addon could not load: ERR_ADDON_NOT_FOUND' },
      warnings: [{ code: 'VOLLEY_FALLBACK_ENGINE', message: expect.stringMatching(/could not be loaded: no build in build\/Release and no prebuild for linux-x64 \(No native build was found for [^\n]*\)\. Build it.*`npx volley build-addon`.*fallback engine/s) }],
    })
  })

  it('missing, with VOLLEY_REQUIRE_ADDON=1: listen(), connect() and bind() fail with the addon error instead of falling back', () => {
    const dir = packageCopy('volley-require-addon-', ['package.json', 'src'])
    const script = `
      import { Client, Server, createDatagramSocket, generateConnectToken } from './src/index.ts'
      const warnings = []
      process.on('warning', (warning) => warnings.push(warning.code))
      const code = (promise) => promise.then(() => 'ok', (error) => error.code)
      const privateKey = new Uint8Array(32).fill(9)
      const server = await code(new Server({ protocolId: 1n, privateKey, address: '127.0.0.1:0' }).listen())
      const token = await generateConnectToken({ protocolId: 1n, privateKey, clientId: 1n, serverAddresses: ['127.0.0.1:9'], expireSeconds: 30, timeoutSeconds: 5 })
      const client = await code(new Client().connect(token))
      const socket = await code(createDatagramSocket().bind(0, '127.0.0.1'))
      console.log(JSON.stringify({ server, client, socket, warnings }))
    `
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: dir, encoding: 'utf8', timeout: 20_000, env: { ...process.env, VOLLEY_REQUIRE_ADDON: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    expect(JSON.parse(out)).toEqual({ server: 'ERR_ADDON_NOT_FOUND', client: 'ERR_ADDON_NOT_FOUND', socket: 'ERR_ADDON_NOT_FOUND', warnings: [] })
  })

  it('there but unloadable (another libc, a damaged file): the warning names the file and why it did not load', () => {
    const dir = packageCopy('volley-bad-addon-', ['package.json', 'src'])
    const damaged = join(dir, 'prebuilds', 'linux-x64', 'volley.glibc.node')
    mkdirSync(dirname(damaged), { recursive: true })
    writeFileSync(damaged, 'not an ELF file')
    const script = `
      import { createDatagramSocket } from './src/index.ts'
      const warnings = []
      process.on('warning', (warning) => warnings.push({ code: warning.code, message: warning.message }))
      const socket = createDatagramSocket()
      await socket.bind(0, '127.0.0.1')
      await socket.close()
      console.log(JSON.stringify(warnings))
    `
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] })
    const warnings = JSON.parse(out) as { code: string; message: string }[]
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!.code).toBe('VOLLEY_FALLBACK_ENGINE')
    expect(warnings[0]!.message).toContain(`could not be loaded: ${damaged} is there but did not load (a prebuild needs glibc 2.28 or newer, as Node’s own binaries do): ${damaged}: file too short. Build it`)
    expect(warnings[0]!.message).not.toContain('no prebuild')
  })

  describe('volley build-addon, where no prebuild fits and the build fails (no compiler)', () => {
    // The package as npm unpacks it where no prebuild fits: no prebuilds/, no build/; a compiler that fails.
    function unpacked(withDependencies = true): string {
      return packageCopy('volley-build-addon-', ['package.json', 'binding.gyp', 'CMakeLists.txt', 'native', 'scripts', 'src'], withDependencies)
    }
    /**
     * The build script, run from elsewhere (it must find its package by itself); through the command line as a user
     * runs it (`npx volley build-addon`) where `viaCli`.
     */
    function buildAddon(dir: string, extraEnv: NodeJS.ProcessEnv = {}, viaCli = false): { status: number | null; stderr: string } {
      const env: NodeJS.ProcessEnv = { ...process.env, CC: '/bin/false', CXX: '/bin/false', npm_config_nodedir: '/usr', ...extraEnv }
      env.PATH = `${join(root, 'node_modules', '.bin')}:${env.PATH ?? ''}`
      const command = viaCli ? ['--import', import.meta.resolve('tsx'), join(dir, 'src', 'cli', 'volley.ts'), 'build-addon'] : [join(dir, 'scripts', 'build-addon.mjs')]
      const run = spawnSync(process.execPath, command, { cwd: tmpdir(), env, encoding: 'utf8', timeout: 60_000 })
      return { status: run.status, stderr: run.stderr }
    }

    it('elsewhere than Linux (macOS, say) tries no build, and says the fallback engine runs', () => {
      // process.platform as a Mac's, before the script reads it: NODE_OPTIONS reaches the script's own process,
      // and the command line's too, whose loader (tsx, esbuild) must see Linux.
      const preload = join(mkdtempSync(join(tmpdir(), 'volley-platform-')), 'darwin.mjs')
      temporary.push(dirname(preload))
      writeFileSync(preload, "if (process.argv[1]?.endsWith('build-addon.mjs')) Object.defineProperty(process, 'platform', { value: 'darwin' })\n")
      const dir = unpacked()
      const { status, stderr } = buildAddon(dir, { NODE_OPTIONS: `--import=${preload}` }, true)
      expect(stderr).toBe(
        'volley build-addon: the native addon is for Linux (epoll, recvmmsg); on darwin, Server, Client and datagram sockets run on the fallback engine (node:dgram, with the protocol cores as WebAssembly).\n',
      )
      expect(status).toBe(1)
      expect(existsSync(join(dir, 'build'))).toBe(false) // no build was tried
    })

    it('fails, and says what to install and that the fallback engine runs meanwhile', { timeout: 70_000 }, () => {
      const dir = unpacked()
      const { status, stderr } = buildAddon(dir)
      expect(stderr).toMatch(/gyp ERR! build error/) // configured, then the compiler failed
      expect(stderr).toMatch(
        /volley build-addon: no prebuilt addon fits this platform and building one failed \(exit status 1\)\.\nInstall a C\+\+17 compiler, make, python3 and a static libsodium .*then run `npx volley build-addon` again\. Meanwhile Server, Client and datagram sockets run on the fallback engine/,
      )
      expect(status).toBe(1)
      expect(existsSync(join(dir, 'build', 'Makefile'))).toBe(true) // in the package, not where it ran from
      expect(existsSync(join(dir, 'build', 'Release', 'volley.node'))).toBe(false)
    })

    it('fails where node-gyp-build cannot be found, saying so', { timeout: 70_000 }, () => {
      const { status, stderr } = buildAddon(unpacked(false))
      expect(stderr).toMatch(/building one failed \(node-gyp-build could not run: Cannot find module 'node-gyp-build\/bin\.js'/)
      expect(status).toBe(1)
    })
  })

  it('npm install runs no script of the package: nothing for npm to ask approval for, nothing to build where the prebuild loads', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string>; gypfile?: boolean }
    // npm runs these at install (prepare: for a git dependency); with a binding.gyp and no install script, it runs node-gyp unless gypfile is false.
    expect(Object.keys(manifest.scripts).filter((name) => /^(pre|post)?install$|^prepare$/.test(name))).toEqual([])
    expect(manifest.gypfile).toBe(false)
  })
})
