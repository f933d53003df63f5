// What the fallback engines (engine/fallback/engine.ts for Server and Client, engine/fallback/datagrams.ts for datagram
// sockets) share: their sockets by id, their hold on the event loop, their end once the last socket closes,
// and a node:dgram socket bound as the native engine binds one.
import dgram from 'node:dgram'
import { javascriptIp, parseIp } from '../../util/ip.ts'
import { surfaceLater } from '../../util/errors.ts'
import { type NativeSocketInfo, type NativeSocketOptions, openError } from '../native/addon.ts'
import type { EngineClient } from '../engine.ts'
import { reportCappedBuffers } from '../socket-buffers.ts'

/**
 * The owner of a socket that binds in the background (openNow(): the bind a datagram send() makes, a
 * client's socket), told how the bind ended.
 */
export interface OpeningClient extends EngineClient {
  /** Bound: where, and the buffer sizes the kernel granted. Not called once the socket is closing. */
  onOpened(info: NativeSocketInfo): void
  /** The bind failed; onClosed follows. */
  onOpenFailed(error: Error): void
}

/** What every fallback socket has. */
interface FallbackSocket {
  readonly id: number
  readonly socket: dgram.Socket
  /** Closed or closing: nothing more is taken or handed over. */
  closing: boolean
}

/**
 * Holds the event loop open while referenced, as the native engine's one handle does: the sockets and timers
 * of a fallback engine never do themselves.
 */
class EventLoopHold {
  #refs = 0
  #handle: NodeJS.Timeout | undefined

  ref(): void {
    if (this.#refs++ === 0) this.#handle = setInterval(() => {}, 1 << 30)
  }

  unref(): void {
    if (--this.#refs === 0) {
      clearInterval(this.#handle)
      this.#handle = undefined
    }
  }
}

export abstract class FallbackSockets<Socket extends FallbackSocket> {
  protected readonly sockets = new Map<number, Socket>()
  readonly #hold = new EventLoopHold()
  #nextId = 1
  #stopped = false
  readonly #onIdle: () => void

  /** onIdle: called once, when the last socket has closed. */
  constructor(onIdle: () => void) {
    this.#onIdle = onIdle
  }

  get stopped(): boolean {
    return this.#stopped
  }

  /** Stops an engine that has no socket (for example after its only bind failed). */
  releaseIfIdle(): void {
    if (this.sockets.size === 0) this.#shutdown()
  }

  /** A reference on the event loop: open() takes one per socket, which its owner gives back. */
  ref(): void {
    this.#hold.ref()
  }

  unref(): void {
    this.#hold.unref()
  }

  /** The socket open() made, once ready (bound; its protocol core made): where it is, or the bind's error. */
  protected async whenOpen(entry: Socket, ready: Promise<unknown>, options: NativeSocketOptions): Promise<NativeSocketInfo> {
    try {
      await ready
    } catch (error) {
      entry.closing = true
      entry.socket.close()
      this.unref() // the reference its open took: no owner has it
      this.remove(entry)
      throw openError(error, options)
    }
    return boundInfo(entry.id, entry.socket, options)
  }

  /**
   * The socket openNow() made, at once: the wildcard address and port 0 until it is bound. The owner learns
   * how the bind ended: onOpened with where it is bound, or onOpenFailed with the error open() would have
   * rejected with (its syscall, address and port), then onClosed (where the owner gives back the reference
   * open took), as for a socket that failed and closed.
   */
  protected openingNow(entry: Socket, ready: Promise<unknown>, options: NativeSocketOptions, client: OpeningClient): NativeSocketInfo {
    ready.then(
      () => {
        if (entry.closing) return
        try {
          client.onOpened(boundInfo(entry.id, entry.socket, options))
        } catch (thrown) {
          surfaceLater(thrown) // a throwing 'listening' or 'drain' handler: uncaught, not an unhandled rejection
        }
      },
      (error: unknown) => {
        entry.closing = true
        entry.socket.close()
        try {
          client.onOpenFailed(openError(error, options))
          client.onClosed()
        } catch (thrown) {
          surfaceLater(thrown) // an 'error' event nobody listens to
        } finally {
          this.remove(entry)
        }
      },
    )
    return { id: entry.id, address: options.ipv6 ? '::' : '0.0.0.0', family: options.ipv6 ? 6 : 4, port: 0, receiveBufferSize: options.receiveBufferSize, sendBufferSize: options.sendBufferSize }
  }

  protected nextId(): number {
    return this.#nextId++
  }

  /** Adds a socket, with the reference its owner will give back. */
  protected add(socket: Socket): void {
    this.sockets.set(socket.id, socket)
    this.ref()
  }

  /** Forgets a socket; the engine ends with its last one. */
  protected remove(socket: Socket): void {
    this.sockets.delete(socket.id)
    if (this.sockets.size === 0) this.#shutdown()
  }

  #shutdown(): void {
    if (this.#stopped) return
    this.#stopped = true
    this.#onIdle()
  }
}

/**
 * A node:dgram socket for these options (it never holds the event loop itself), and its bind: settled once
 * bound, with the buffer sizes asked for set (past the system's cap the kernel's stay, as on the native
 * engine), or rejected with the bind's error.
 */
export function bindSocket(options: NativeSocketOptions): { socket: dgram.Socket; bound: Promise<void> } {
  // reusePort: checked first (choose.ts: checkFallbackSupports) to be one this Node's node:dgram takes.
  const socket = dgram.createSocket({ type: options.ipv6 ? 'udp6' : 'udp4', ipv6Only: options.ipv6Only, reuseAddr: options.reuseAddress, ...(options.reusePort && { reusePort: true }) })
  socket.unref()
  const bound = new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind({ port: options.port, ...(options.address !== '' && { address: dgramBindAddress(options.address) }), exclusive: true }, () => {
      socket.off('error', reject)
      for (const [size, set] of [
        [options.receiveBufferSize, (bytes: number) => socket.setRecvBufferSize(bytes)],
        [options.sendBufferSize, (bytes: number) => socket.setSendBufferSize(bytes)],
      ] as const) {
        try {
          if (size > 0) set(size)
        } catch {
          // Above the system's cap: the kernel's size stays.
        }
      }
      resolve()
    })
  })
  return { socket, bound }
}

/** Where a bound socket is, and its buffer sizes as the kernel reports them (what was asked, if it cannot tell); warns once where the kernel capped them. */
export function boundInfo(id: number, socket: dgram.Socket, options: Pick<NativeSocketOptions, 'receiveBufferSize' | 'sendBufferSize'>): NativeSocketInfo {
  const local = socket.address()
  const read = (get: () => number, asked: number): number => {
    try {
      return get()
    } catch {
      return asked
    }
  }
  const receiveBufferSize = read(() => socket.getRecvBufferSize(), options.receiveBufferSize)
  const sendBufferSize = read(() => socket.getSendBufferSize(), options.sendBufferSize)
  // As the native engine does, but past the cap there is no going: node:dgram has no SO_RCVBUFFORCE.
  reportCappedBuffers({ receive: options.receiveBufferSize, send: options.sendBufferSize }, { receive: receiveBufferSize, send: sendBufferSize }, 'fallback')
  return { id, address: local.address, family: local.family === 'IPv6' ? (6 as const) : (4 as const), port: local.port, receiveBufferSize, sendBufferSize }
}

/** A process-wide engine, made on first use and made again once the last has ended. */
export function sharedInstance<Engine extends { readonly stopped: boolean }>(make: (onIdle: () => void) => Engine): () => Engine {
  let shared: Engine | undefined
  return () => {
    if (shared === undefined || shared.stopped) {
      const made: Engine = make(() => {
        if (shared === made) shared = undefined
      })
      shared = made
    }
    return shared
  }
}

/**
 * The address as node:dgram's bind takes it: libuv reads a scope as an interface's name only (a number was
 * looked up as a name, found none, and a link-local bind failed with EINVAL), so a numbered scope is named.
 */
export function dgramBindAddress(address: string): string {
  const scope = address.indexOf('%')
  if (scope < 0 || !/^\d+$/.test(address.slice(scope + 1))) return address
  const parsed = parseIp(javascriptIp, address)
  return parsed === null ? address : javascriptIp.formatIp(parsed.bytes, parsed.family, parsed.scopeId)
}
