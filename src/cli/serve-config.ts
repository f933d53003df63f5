// `volley serve`'s settings: from its flags and from a config file (--config, JSON), the flags over the file,
// then the defaults; each checked where it is given, so that a mistake names the flag or the file's field.
import { readFile, stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import { dirname, resolve } from 'node:path'
import type { ServerOptions } from '../index.ts'
import { dgramReusesPorts } from '../engine/choose.ts'
import { engineInUse } from '../api/native-info.ts'
import { type ServerAddress, parseServerAddressPortZero, unreachableServerAddress } from '../protocol/netcode/server-address.ts'
import { type NumberRange, UsageError, inRange, nearestName, numberArgument, rangeText } from './arguments.ts'
import { resolveHostAddress } from './host-address.ts'
import { jsonErrorText } from './json-position.ts'
import {
  type ChannelMode,
  channelModes,
  channelsOf,
  defaultProtocolId,
  keyRequired,
  isChannelMode,
  keepAliveRange,
  keyFromHex,
  maxClientsRange,
  maxMessageBytesRange,
  secondsRange,
  serveDefaults,
  uint64,
  workersRange,
} from './settings.ts'

/** What serve runs with, once its flags, its config file and the defaults are put together. */
export interface ServeValues {
  address: string
  publicAddress: string
  protocolId: bigint
  maxClients: number
  keepAliveMs: number
  reusePort: boolean
  channels: ChannelMode[]
  maxMessageBytes: number
  seconds: number
  /** The private key's file (the config file's keyFile), its path absolute. */
  keyFile: string
  metricsAddress: string
  statusIntervalSeconds: number
  workers: number
}

/** A setting as given, and where: '--max-clients', or '"maxClients" (volley.json)' and the field's place. */
export interface Given<T> {
  readonly value: T
  readonly from: string
  /** Given by a config file: which, and the field's path in it ('metrics.address'). */
  readonly config?: { readonly file: string; readonly path: string }
}

/** The settings a source gives: each one it has, with where it came from. */
export type ServeSettings = { [K in keyof ServeValues]?: Given<ServeValues[K]> }

/** The flag of each setting (keyFile has none: a key is given by --key or VOLLEY_KEY instead). */
export const serveFlags = {
  address: '--address',
  publicAddress: '--public-address',
  protocolId: '--protocol-id',
  maxClients: '--max-clients',
  keepAliveMs: '--keep-alive-ms',
  reusePort: '--reuse-port',
  channels: '--channels',
  maxMessageBytes: '--max-message-bytes',
  seconds: '--seconds',
  keyFile: '"keyFile" in --config',
  metricsAddress: '--metrics-address',
  statusIntervalSeconds: '--status-interval',
  workers: '--workers',
} as const satisfies Record<keyof ServeValues, string>

/** serve's flags, as parseArgs gives them. */
export interface ServeFlagValues {
  address?: string | undefined
  'public-address'?: string | undefined
  'protocol-id'?: string | undefined
  'max-clients'?: string | undefined
  'keep-alive-ms'?: string | undefined
  'reuse-port'?: boolean | undefined
  channels?: string | undefined
  'max-message-bytes'?: string | undefined
  seconds?: string | undefined
  'metrics-address'?: string | undefined
  'status-interval'?: string | undefined
  workers?: string | undefined
}

/** The settings serve's flags give, each checked in the flag's words. */
export function serveFlagSettings(flags: ServeFlagValues): ServeSettings {
  const settings: ServeSettings = {}
  const set = <K extends keyof ServeValues>(name: K, value: ServeValues[K] | undefined): void => {
    if (value !== undefined) settings[name] = { value, from: serveFlags[name] } as ServeSettings[K]
  }
  const number = (flag: string, text: string | undefined, range: NumberRange): number | undefined =>
    text === undefined ? undefined : numberArgument(flag, text, 0, range)
  set('address', nonEmpty(flags.address, '--address'))
  set('publicAddress', nonEmpty(flags['public-address'], '--public-address'))
  const protocolId = flags['protocol-id']
  if (protocolId !== undefined) set('protocolId', uint64(protocolId, '--protocol-id', `'${protocolId}'`))
  set('maxClients', number('max-clients', flags['max-clients'], maxClientsRange))
  set('keepAliveMs', number('keep-alive-ms', flags['keep-alive-ms'], keepAliveRange))
  if (flags['reuse-port'] === true) set('reusePort', true)
  if (flags.channels !== undefined) set('channels', channelFlag(flags.channels))
  set('maxMessageBytes', number('max-message-bytes', flags['max-message-bytes'], maxMessageBytesRange))
  set('seconds', number('seconds', flags.seconds, secondsRange))
  set('metricsAddress', nonEmpty(flags['metrics-address'], '--metrics-address'))
  set('statusIntervalSeconds', number('status-interval', flags['status-interval'], secondsRange))
  set('workers', number('workers', flags.workers, workersRange))
  return settings
}

function nonEmpty(text: string | undefined, flag: string): string | undefined {
  if (text === '') throw new UsageError(`${flag} needs a value`)
  return text
}

/** --channels: modes separated by commas (how many, channelsOf() checks). */
export function channelFlag(text: string): ChannelMode[] {
  const modes = text.split(',').map((mode) => mode.trim())
  if (!modes.every(isChannelMode)) throw new UsageError(`--channels must be modes separated by commas (${channelModes.join(', ')}), not '${text}'`)
  return modes
}

/** The config file's fields: each setting's, but metrics.address for metricsAddress. */
const configFields = [
  'address',
  'publicAddress',
  'protocolId',
  'maxClients',
  'keepAliveMs',
  'reusePort',
  'channels',
  'maxMessageBytes',
  'seconds',
  'keyFile',
  'metrics',
  'statusIntervalSeconds',
  'workers',
] as const
const metricsFields = ['address'] as const

/**
 * The settings a config file gives. Refuses (UsageError, naming the file and the field) a file that cannot be
 * read, is no JSON object, has a field this version does not know or one of the wrong type or range, holds
 * the key itself, or names a key file that other users may read.
 */
export async function readServeConfig(file: string): Promise<ServeSettings> {
  const where = `--config ${file}`
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new UsageError(`${where}: cannot be read (${systemErrorText(error)})`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new UsageError(`${where}: not valid JSON ${jsonErrorText(error, text)}`)
  }
  const mistake = (path: string, expected: string, value: unknown): UsageError => new UsageError(`${where}: "${path}" must be ${expected}, not ${shown(value)}`)
  const fields = fieldsOf(json, '', configFields, where)
  const settings: ServeSettings = {}
  const set = <K extends keyof ServeValues>(name: K, value: ServeValues[K], path: string = name): void => {
    settings[name] = { value, from: `"${path}" (${file})`, config: { file, path } } as ServeSettings[K]
  }
  const stringField = (path: string, value: unknown): string => {
    if (typeof value !== 'string' || value === '') throw mistake(path, 'a non-empty string', value)
    return value
  }
  const numberField = (path: string, value: unknown, range: NumberRange): number => {
    if (typeof value !== 'number' || !inRange(value, range)) throw mistake(path, rangeText(range), value)
    return value
  }
  for (const [field, value] of Object.entries(fields)) {
    switch (field as (typeof configFields)[number]) {
      case 'address':
      case 'publicAddress':
        set(field as 'address', stringField(field, value))
        break
      case 'protocolId':
        // A string for the whole range (a JSON number is exact up to 2^53 only), or a number where it is exact.
        if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) set('protocolId', BigInt(value))
        else if (typeof value === 'string') set('protocolId', uint64(value, `${where}: "protocolId"`, shown(value)))
        else throw mistake(field, 'an integer from 0 to 2^64 - 1 (a string in decimal or 0x hex, or a number up to 2^53 - 1)', value)
        break
      case 'maxClients':
        set('maxClients', numberField(field, value, maxClientsRange))
        break
      case 'keepAliveMs':
        set('keepAliveMs', numberField(field, value, keepAliveRange))
        break
      case 'maxMessageBytes':
        set('maxMessageBytes', numberField(field, value, maxMessageBytesRange))
        break
      case 'seconds':
        set('seconds', numberField(field, value, secondsRange))
        break
      case 'statusIntervalSeconds':
        set('statusIntervalSeconds', numberField(field, value, secondsRange))
        break
      case 'workers':
        set('workers', numberField(field, value, workersRange))
        break
      case 'reusePort':
        if (typeof value !== 'boolean') throw mistake(field, 'true or false', value)
        set('reusePort', value)
        break
      case 'channels': {
        if (!Array.isArray(value) || value.length === 0 || value.length > 255) throw mistake(field, `a list of 1 to 255 modes (${channelModes.join(', ')})`, value)
        const modes = value as unknown[]
        modes.forEach((mode, index) => {
          if (!isChannelMode(mode)) throw mistake(`channels[${index}]`, `one of ${channelModes.join(', ')}`, mode)
        })
        set('channels', modes as ChannelMode[])
        break
      }
      case 'keyFile': {
        // Relative to the config file, which names it, not to wherever serve was started.
        const path = resolve(dirname(file), stringField(field, value))
        set('keyFile', path)
        break
      }
      case 'metrics': {
        const metrics = fieldsOf(value, 'metrics', metricsFields, where)
        if (metrics.address !== undefined) set('metricsAddress', stringField('metrics.address', metrics.address), 'metrics.address')
        break
      }
    }
  }
  return settings
}

/** A JSON value shown in an error: itself, as JSON, cut short past 60 characters. */
function shown(value: unknown): string {
  const json = JSON.stringify(value) ?? String(value)
  return json.length > 60 ? `${json.slice(0, 57)}...` : json
}

/**
 * The fields of a JSON object at `path` ('' for the file itself): refused unless an object whose fields are
 * all `known` ones. A key inline is refused with what to give instead.
 */
function fieldsOf(value: unknown, path: string, known: readonly string[], where: string): Record<string, unknown> {
  const what = path === '' ? 'the file' : `"${path}"`
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${where}: ${what} must be a JSON object ({ "field": value, ... }), not ${Array.isArray(value) ? 'an array' : shown(value)}`)
  }
  for (const field of Object.keys(value)) {
    const fieldPath = path === '' ? field : `${path}.${field}`
    if (known.includes(field)) continue
    if (path === '' && (field === 'key' || field === 'privateKey')) {
      throw new UsageError(
        `${where}: "${field}" is not taken: a config file is copied and read more widely than a key should be; give "keyFile" (a file of the key's 64 hex digits, readable by volley's user only) or VOLLEY_KEY in the environment`,
      )
    }
    const nearest = nearestName(field, known)
    const suggestion = nearest === undefined ? '' : ` (did you mean "${path === '' ? nearest : `${path}.${nearest}`}"?)`
    throw new UsageError(`${where}: unknown field "${fieldPath}"${suggestion}; the fields${path === '' ? '' : ` of "${path}"`} are ${known.join(', ')}`)
  }
  return value as Record<string, unknown>
}

/** A system error as "ENOENT: no such file or directory", without the call and path Node adds. */
function systemErrorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/, [a-z]+(?: '.*')?$/s, '')
}

/**
 * The private key in a key file: its 64 hex digits (a line end after them, or spaces, are fine). Refused when
 * other users may read it, or anyone but its owner write it: the key would be theirs too (chmod 600, or 640
 * for a group of its own).
 */
export async function keyFromFile(given: Given<string>): Promise<Uint8Array> {
  const path = given.value
  let mode: number
  let text: string
  try {
    mode = (await stat(path)).mode
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new UsageError(`${given.from}: ${path} cannot be read (${systemErrorText(error)})`)
  }
  if (process.platform !== 'win32' && (mode & 0o026) !== 0) {
    throw new UsageError(
      `${given.from}: ${path} may be ${(mode & 0o004) !== 0 ? 'read' : 'written'} by other users (mode 0${(mode & 0o777).toString(8)}): make it readable by its owner only (chmod 600; 640 for a group of its own)`,
    )
  }
  return keyFromHex(text.trim(), `${given.from}: ${path}`)
}

/** What serve runs: its server's options (each worker's, with --workers), and the command's own settings. */
export interface ServeRun {
  server: ServerOptions & { address: string }
  seconds: number
  statusIntervalSeconds: number
  /** Where /metrics and /healthz are served (a resolved IP address and port), and the setting's name; none without --metrics-address. */
  metrics?: { host: string; port: number; from: string }
  workers: number
}

/**
 * serve's settings put together: the flags over the config file's, then the defaults; host names resolved,
 * and what only the settings together can say checked (an error names the flag or field of each). The key:
 * --key, else VOLLEY_KEY or the config file's keyFile (not both: which one wins would be a guess).
 */
export async function serveRun(flags: ServeSettings, config: ServeSettings | undefined, keyFlag: string | undefined, configFile?: string): Promise<ServeRun> {
  const settings: ServeSettings = { ...config, ...flags }
  /** The name of a setting in an error: where it was given, or its flag where it was not. */
  const name = (setting: keyof ServeValues): string => settings[setting]?.from ?? serveFlags[setting]
  const value = <K extends keyof ServeValues>(setting: K, fallback: ServeValues[K]): ServeValues[K] => settings[setting]?.value ?? fallback

  if (settings.address === undefined) throw new UsageError(`--address is required${configFile === undefined ? '' : ` (or "address" in ${configFile})`}`)
  const bound = await serverAddressOf(settings.address)
  const reusePort = value('reusePort', false)
  const workers = value('workers', serveDefaults.workers)
  if (bound.port === 0 && reusePort) throw new UsageError(`${name('reusePort')} needs a fixed port in ${name('address')}, not port 0`)
  if (bound.port === 0 && workers > 1) throw new UsageError(`${name('workers')} ${workers} needs a fixed port in ${name('address')}, not port 0: the workers share it`)
  const publicAddress = settings.publicAddress === undefined ? undefined : await serverAddressOf(settings.publicAddress)
  const unreachable = unreachableServerAddress(publicAddress ?? bound)
  if (unreachable !== undefined) {
    throw new UsageError(
      publicAddress === undefined
        ? `${name('address')} ${settings.address.value} is ${unreachable}, which clients cannot send to: give ${settings.address.config === undefined ? '--public-address' : '"publicAddress"'} too, the address tokens list`
        : `${name('publicAddress')} ${settings.publicAddress!.value} is ${unreachable}, which clients cannot send to`,
    )
  }
  if (settings.maxMessageBytes !== undefined && settings.channels === undefined) throw new UsageError(`${name('maxMessageBytes')} needs ${name('channels')}`)
  if (workers > 1) checkWorkersShareAPort(workers, name('workers'))
  const metrics = settings.metricsAddress === undefined ? undefined : await httpAddressOf(settings.metricsAddress)
  return {
    server: {
      protocolId: value('protocolId', defaultProtocolId),
      privateKey: await serveKey(keyFlag, settings.keyFile, configFile),
      address: bound.text,
      ...(publicAddress === undefined ? {} : { publicAddress: publicAddress.text }),
      maxClients: value('maxClients', serveDefaults.maxClients),
      keepAliveIntervalMs: value('keepAliveMs', serveDefaults.keepAliveMs),
      // The workers share the port: each binds it with SO_REUSEPORT, and the kernel spreads the clients.
      reusePort: reusePort || workers > 1,
      ...(settings.channels === undefined
        ? {}
        : { channels: channelsOf(settings.channels.value, name('channels')), maxMessageBytes: value('maxMessageBytes', serveDefaults.maxMessageBytes) }),
    },
    seconds: value('seconds', serveDefaults.seconds),
    statusIntervalSeconds: value('statusIntervalSeconds', serveDefaults.statusIntervalSeconds),
    ...(metrics === undefined ? {} : { metrics }),
    workers,
  }
}

/** A server address setting, its host name resolved: its text and what it parses to. A config file's mistake is said with the file. */
async function serverAddressOf(given: Given<string>): Promise<ServerAddress & { text: string }> {
  const text = await resolveHostAddress(given.value, given.from)
  try {
    return { ...parseServerAddressPortZero(text, given.config?.path ?? given.from), text }
  } catch (error) {
    if (given.config === undefined) throw error
    throw new UsageError(`--config ${given.config.file}: ${(error as Error).message}`)
  }
}

/** Where the HTTP endpoint listens: an IP address (a host name resolved) and a port, 0 for any free one. */
async function httpAddressOf(given: Given<string>): Promise<{ host: string; port: number; from: string }> {
  const text = await resolveHostAddress(given.value, given.from)
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text)
  const host = match?.[1] ?? match?.[2]
  const port = Number(match?.[3])
  if (host === undefined || isIP(host) === 0 || (match?.[1] !== undefined) !== (isIP(host) === 6) || port > 65535) {
    throw new UsageError(`${given.from} must be an address and port, as 127.0.0.1:9464, [::1]:9464 or localhost:9464, not '${given.value}'`)
  }
  return { host, port, from: given.from }
}

/**
 * Refuses --workers past 1 where the servers cannot share a port: on the fallback engine, whose node:dgram
 * binds with SO_REUSEPORT from Node 22.12 and 23.1 on only.
 */
function checkWorkersShareAPort(workers: number, name: string): void {
  const engine = engineInUse()
  if (engine.engine === 'native' || dgramReusesPorts()) return
  throw new UsageError(
    `${name} ${workers} needs the native engine on Node ${process.versions.node}: this process runs the fallback engine (${engine.reason}), ` +
      'which shares a port among workers from Node 22.12 and 23.1 on only. Build the native addon (`npx volley build-addon`), use a newer Node, or run one worker',
  )
}

/** The private key: --key, else VOLLEY_KEY or the config file's keyFile (refused together). */
async function serveKey(flag: string | undefined, keyFile: Given<string> | undefined, configFile: string | undefined): Promise<Uint8Array> {
  if (flag !== undefined) return keyFromHex(flag, '--key')
  const environment = process.env.VOLLEY_KEY
  if (environment !== undefined && keyFile !== undefined) {
    throw new UsageError(`VOLLEY_KEY and ${keyFile.from} both give a key: keep one (a --key flag would override both)`)
  }
  if (environment !== undefined) return keyFromHex(environment, 'VOLLEY_KEY')
  if (keyFile !== undefined) return keyFromFile(keyFile)
  throw new UsageError(`${keyRequired}${configFile === undefined ? '' : `, or "keyFile" in ${configFile}`}`)
}
