// Child processes of the bench: spawned (optionally pinned to one CPU with taskset), read line by
// line for protocol messages, and all killed when the runner exits, however it exits.
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { type ChildMessage, parseMessage } from './protocol.ts'

const live = new Set<ChildProcess>()

/** Kills every child still running (SIGKILL: none of them holds anything worth a clean exit). */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  live.clear()
}

process.on('exit', killAllChildren)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    killAllChildren()
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1))
  })
}

export interface LaunchSpec {
  /** For messages: "volley receiver", "C blaster"... */
  name: string
  command: string
  args: readonly string[]
  /** Run on this CPU only (taskset -c), or anywhere. */
  cpu: number | undefined
  cwd: string
  /** Variables set for the child, over this process's environment. */
  env?: Record<string, string>
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export class BenchChild {
  readonly name: string
  readonly exited: Promise<Exit>
  readonly #child: ChildProcess
  readonly #messages: ChildMessage[] = []
  readonly #stderr: string[] = []
  #wake: (() => void) | undefined
  #exit: Exit | undefined

  constructor(spec: LaunchSpec) {
    this.name = spec.name
    const [command, args] =
      spec.cpu === undefined ? [spec.command, spec.args] : ['taskset', ['-c', String(spec.cpu), spec.command, ...spec.args]]
    this.#child = spawn(command, args, { cwd: spec.cwd, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...spec.env } })
    live.add(this.#child)
    this.exited = new Promise((resolve) => {
      this.#child.on('close', (code, signal) => {
        live.delete(this.#child)
        this.#exit = { code, signal }
        this.#wake?.()
        resolve(this.#exit)
      })
    })
    this.#child.on('error', (error) => {
      this.#stderr.push(`spawn failed: ${error.message}`)
    })
    this.#child.stdin?.on('error', () => {}) // the child may be gone already; its exit tells why
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      const message = parseMessage(line)
      if (message === undefined) {
        this.#stderr.push(`(stdout) ${line}`)
        return
      }
      this.#messages.push(message)
      this.#wake?.()
    })
    createInterface({ input: this.#child.stderr! }).on('line', (line) => {
      this.#stderr.push(line)
      if (this.#stderr.length > 40) this.#stderr.shift()
    })
  }

  /** The next message of the given type; throws on an 'error' message, an early exit or the timeout. */
  async expect<T extends ChildMessage['type']>(type: T, timeoutMs: number): Promise<Extract<ChildMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const message = this.#messages.shift()
      if (message !== undefined) {
        if (message.type === type) return message as Extract<ChildMessage, { type: T }>
        if (message.type === 'error') throw new ChildFailure(this.name, message.message)
        continue
      }
      if (this.#exit !== undefined) {
        throw new ChildFailure(this.name, `exited (${this.#exit.signal ?? `code ${this.#exit.code}`}) before a '${type}' message${this.#tail()}`)
      }
      const left = deadline - Date.now()
      if (left <= 0) throw new ChildFailure(this.name, `no '${type}' message within ${timeoutMs} ms${this.#tail()}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.#wake = undefined
    }
  }

  /** The child's process id (undefined when it could not be spawned). */
  get pid(): number | undefined {
    return this.#child.pid
  }

  /** Writes one command line on the child's stdin. */
  tell(line: string): void {
    if (this.#exit === undefined && this.#child.stdin?.writable) this.#child.stdin.write(`${line}\n`)
  }

  /** Waits for the child to exit; kills it when it takes longer than timeoutMs. */
  async finish(timeoutMs: number): Promise<Exit> {
    const timer = setTimeout(() => this.kill(), timeoutMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }

  kill(): void {
    if (this.#exit === undefined && this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL')
  }

  #tail(): string {
    return this.#stderr.length > 0 ? `:\n    ${this.#stderr.slice(-12).join('\n    ')}` : ''
  }
}

export class ChildFailure extends Error {
  readonly child: string
  constructor(child: string, message: string) {
    super(`${child}: ${message}`)
    this.name = 'ChildFailure'
    this.child = child
  }
}
