// Command line of `npm run bench` (after `--`), e.g. `npm run bench -- --quick`.
import { parseArgs } from 'node:util'

export const receiverIds = ['volley', 'dgram', 'udx-native', 'c-recvmmsg'] as const
export type ReceiverId = (typeof receiverIds)[number]
export const senderIds = ['volley', 'dgram'] as const
export type SenderId = (typeof senderIds)[number]

/**
 * split: the C counterpart (blaster or sink) on CPU 0, the process under test (all of its threads) on
 *        CPU 1. Each side has one core of its own, whether it runs one thread or several.
 * none:  no pinning, the scheduler decides.
 */
export type Pinning = 'split' | 'none'

export interface BenchOptions {
  quick: boolean
  seconds: number
  repeats: number
  pin: Pinning
  receivers: ReceiverId[]
  /** Datagrams per blaster message: 1 = plain sendmmsg (the default), more = UDP GSO (--gso). */
  segments: number
  receive: boolean
  send: boolean
}

export const usage = `usage: npm run bench -- [options]
  --quick              short smoke run: 0.5 s per case, 1 repeat (also BENCH_QUICK=1)
  --seconds=S          sending time per case (default 2.5, quick 0.5)
  --repeats=N          runs per case, the median is reported (default 3, quick 1)
  --pin=split|none     split (default when taskset works): C side on CPU 0, the tested process on CPU 1
  --receivers=a,b      subset of ${receiverIds.join(',')}
  --gso                the blaster sends with UDP GSO, 32 datagrams per message, to saturate receivers
                       (the default blaster, plain sendmmsg, tops out at what one core can send)
  --segments=N         GSO with N datagrams per message (1 = plain sendmmsg)
  --no-send            skip the send cases
  --no-receive         skip the receive cases
  --help`

/** Whether a benchmark runs its short smoke: --quick, or BENCH_QUICK set to anything but '' or '0'. */
export function quickRun(flag: string | boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  return flag === true || (env.BENCH_QUICK !== undefined && env.BENCH_QUICK !== '' && env.BENCH_QUICK !== '0')
}

export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv, canPin: boolean): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      seconds: { type: 'string' },
      repeats: { type: 'string' },
      pin: { type: 'string' },
      receivers: { type: 'string' },
      gso: { type: 'boolean', default: false },
      segments: { type: 'string' },
      'no-send': { type: 'boolean', default: false },
      'no-receive': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  })
  if (values.help) return 'help'
  const quick = quickRun(values.quick, env)
  const seconds = numberOption('seconds', values.seconds, quick ? 0.5 : 2.5, 0.1, 60)
  const repeats = numberOption('repeats', values.repeats, quick ? 1 : 3, 1, 50)
  if (!Number.isInteger(repeats)) throw new Error('--repeats must be an integer')
  const pin = values.pin ?? (canPin ? 'split' : 'none')
  if (pin !== 'split' && pin !== 'none') throw new Error(`--pin must be split or none, got ${pin}`)
  if (pin === 'split' && !canPin) throw new Error('--pin=split needs taskset and at least 2 CPUs')
  const segments = numberOption('segments', values.segments, values.gso ? 32 : 1, 1, 128)
  if (!Number.isInteger(segments)) throw new Error('--segments must be an integer')
  const receivers = values.receivers === undefined ? [...receiverIds] : values.receivers.split(',').map(receiverId)
  return { quick, seconds, repeats, pin, receivers, segments, receive: !values['no-receive'], send: !values['no-send'] }
}

function numberOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`--${name} must be a number from ${min} to ${max}, got ${text}`)
  return value
}

function receiverId(text: string): ReceiverId {
  const found = receiverIds.find((id) => id === text.trim())
  if (found === undefined) throw new Error(`unknown receiver '${text}'; known: ${receiverIds.join(', ')}`)
  return found
}
