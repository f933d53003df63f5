// Host names in the CLI's addresses ('localhost:40000'): resolved here, before the library parses them, since
// connect tokens and the library's addresses carry IP addresses only.
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { UsageError } from './arguments.ts'

/**
 * `text` with its host name resolved: 'name:port' as 'a.b.c.d:port' or '[v6]:port', the first address the
 * system's resolver gives (/etc/hosts, then DNS, in its order: the same on both ends of a host's loopback).
 * An IP literal, or text of another shape, is given back as it is: the library's parser says what is wrong
 * with it. `name` names the flag or field in the error for a name that does not resolve.
 */
export async function resolveHostAddress(text: string, name: string): Promise<string> {
  const match = /^([^:[\]]+):(\d{1,5})$/.exec(text)
  if (match === null) return text
  const [, host = '', port = ''] = match
  // Digits and dots are an IPv4 literal or a mistake, never a name: getaddrinfo took '1.2.3' for 1.2.0.3.
  if (isIP(host) !== 0 || /^[\d.]+$/.test(host) || !/^[a-z\d]([a-z\d-]*[a-z\d])?(\.[a-z\d]([a-z\d-]*[a-z\d])?)*\.?$/i.test(host)) return text
  let resolved: { address: string; family: number }
  try {
    resolved = await lookup(host)
  } catch (error) {
    const code = (error as { code?: unknown }).code
    throw new UsageError(`${name} ${text}: the host name '${host}' does not resolve${typeof code === 'string' ? ` (${code})` : ''}`)
  }
  return resolved.family === 6 ? `[${resolved.address}]:${port}` : `${resolved.address}:${port}`
}
