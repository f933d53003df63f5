// The SessionStore on Redis, for gateways in several processes or hosts. Every operation is one Lua script
// (atomic on the server, one round trip), so two gateways racing for a session see one outcome and an
// expiry happens once. The client is the application's ioredis instance (an optional peer dependency):
// this module imports nothing of it.
//
// Keys, under the prefix (default "volley:{rs}:", whose hash tag keeps them in one cluster slot):
//   s:<id>   hash  c client id, k capabilities (JSON pairs), x expiry (epoch ms), e evictedBelow, g gateway
//   r:<id>   hash  request id → recorded response (bytes)
//   o:<gw>   set   the session ids a gateway owns
//   gw       zset  gateway → when it was last heard from (epoch ms)
// and the channel lost:<gw>, on which a claim tells a gateway that another took one of its sessions.
import { VolleyTypeError, describe } from '../../util/errors.ts'
import type { ClaimRefusal, ClaimedSession, SessionStore, StoreTick, StoreTickResult, StoredSession } from './store.ts'

/** What the store uses of an ioredis client (ioredis 5 or 6 fits it). */
export interface RedisClientLike {
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void
  duplicate(): RedisClientLike
  subscribe(channel: string): Promise<unknown>
  unsubscribe(channel: string): Promise<unknown>
  on(event: 'message', listener: (channel: string, message: string) => void): unknown
  quit(): Promise<unknown>
}

export interface RedisSessionStoreOptions {
  /** Prepended to every key and channel (default "volley:{rs}:"). */
  prefix?: string | undefined
}

// Each script takes the prefix as KEYS[1] (so a cluster routes it by the hash tag) and its values in ARGV.
// Numbers stay the strings they came as when stored: Lua's doubles would print large ones in exponent form.
const scripts = {
  volleyRsCreate: `
local p = KEYS[1]
redis.call('HSET', p .. 's:' .. ARGV[1], 'c', ARGV[2], 'k', ARGV[3], 'x', ARGV[4], 'e', ARGV[5], 'g', ARGV[6])
redis.call('SADD', p .. 'o:' .. ARGV[6], ARGV[1])
return 1`,
  // ARGV: id, client id, gateway, now, new expiry
  volleyRsClaim: `
local p = KEYS[1]
local key = p .. 's:' .. ARGV[1]
local s = redis.call('HMGET', key, 'c', 'k', 'x', 'e', 'g')
if not s[3] or tonumber(s[3]) < tonumber(ARGV[4]) then return {'not-found'} end
if s[1] ~= ARGV[2] then return {'foreign-client'} end
local previous = s[5]
redis.call('HSET', key, 'g', ARGV[3], 'x', ARGV[5])
if previous ~= ARGV[3] then
  redis.call('SREM', p .. 'o:' .. previous, ARGV[1])
  redis.call('SADD', p .. 'o:' .. ARGV[3], ARGV[1])
  redis.call('PUBLISH', p .. 'lost:' .. previous, ARGV[1])
end
return {'ok', previous, s[1], s[2], s[4], redis.call('HGETALL', p .. 'r:' .. ARGV[1])}`,
  // ARGV: id, gateway
  volleyRsExpire: `
local p = KEYS[1]
local key = p .. 's:' .. ARGV[1]
if redis.call('HGET', key, 'g') ~= ARGV[2] then return 0 end
redis.call('DEL', key, p .. 'r:' .. ARGV[1])
redis.call('SREM', p .. 'o:' .. ARGV[2], ARGV[1])
return 1`,
  // ARGV: id, request id, result
  volleyRsRecord: `
local p = KEYS[1]
local e = redis.call('HGET', p .. 's:' .. ARGV[1], 'e')
if not e or tonumber(ARGV[2]) < tonumber(e) then return ARGV[3] end
local key = p .. 'r:' .. ARGV[1]
if redis.call('HSETNX', key, ARGV[2], ARGV[3]) == 1 then return ARGV[3] end
return redis.call('HGET', key, ARGV[2])`,
  // ARGV: gateway, now, ttl, grace expiry, take-over limit, then counted lists: expiries (id, expiry),
  // evictions (id, below), expired (id).
  volleyRsTick: `
local p = KEYS[1]
local gw = ARGV[1]
local now = tonumber(ARGV[2])
redis.call('ZADD', p .. 'gw', ARGV[2], gw)
local at = 6
local lost, ended, taken = {}, {}, {}
local n = tonumber(ARGV[at]); at = at + 1
for i = 1, n do
  local id, x = ARGV[at], ARGV[at + 1]; at = at + 2
  local key = p .. 's:' .. id
  if redis.call('HGET', key, 'g') == gw then redis.call('HSET', key, 'x', x) else lost[#lost + 1] = id end
end
n = tonumber(ARGV[at]); at = at + 1
for i = 1, n do
  local id, below = ARGV[at], ARGV[at + 1]; at = at + 2
  local key = p .. 's:' .. id
  local s = redis.call('HMGET', key, 'g', 'e')
  if s[1] == gw and tonumber(below) > tonumber(s[2]) then
    redis.call('HSET', key, 'e', below)
    local responses = p .. 'r:' .. id
    for _, requestId in ipairs(redis.call('HKEYS', responses)) do
      if tonumber(requestId) < tonumber(below) then redis.call('HDEL', responses, requestId) end
    end
  end
end
n = tonumber(ARGV[at]); at = at + 1
for i = 1, n do
  local id = ARGV[at]; at = at + 1
  local key = p .. 's:' .. id
  if redis.call('HGET', key, 'g') == gw then
    redis.call('DEL', key, p .. 'r:' .. id)
    redis.call('SREM', p .. 'o:' .. gw, id)
    ended[#ended + 1] = id
  end
end
local limit = tonumber(ARGV[5])
for _, other in ipairs(redis.call('ZRANGEBYSCORE', p .. 'gw', '-inf', now - tonumber(ARGV[3]))) do
  if other ~= gw then
    local owned = p .. 'o:' .. other
    while #taken < limit * 4 do
      local id = redis.call('SPOP', owned)
      if not id then break end
      local key = p .. 's:' .. id
      local s = redis.call('HMGET', key, 'c', 'k', 'e')
      if s[1] then
        redis.call('HSET', key, 'g', gw, 'x', ARGV[4])
        redis.call('SADD', p .. 'o:' .. gw, id)
        taken[#taken + 1] = id; taken[#taken + 1] = s[1]; taken[#taken + 1] = s[2]; taken[#taken + 1] = s[3]
      end
    end
    if redis.call('SCARD', owned) == 0 then redis.call('ZREM', p .. 'gw', other) end
  end
  if #taken >= limit * 4 then break end
end
return {lost, ended, taken}`,
} as const

type ScriptName = keyof typeof scripts
type Reply = Buffer | number | null | Reply[]
type Runner = (prefix: string, ...args: Array<string | Buffer>) => Promise<Reply>

/**
 * Sessions shared through Redis. Give it a connected ioredis client; it defines its scripts on it (EVALSHA,
 * loaded on first use) and opens one more connection per onClaimedAway() for the subscription.
 */
export class RedisSessionStore implements SessionStore {
  readonly prefix: string
  readonly #redis: RedisClientLike
  readonly #run: Record<ScriptName, Runner>

  constructor(redis: RedisClientLike, options: RedisSessionStoreOptions = {}) {
    if (typeof redis?.defineCommand !== 'function' || typeof redis.duplicate !== 'function') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "redis" argument must be an ioredis client. Received ${describe(redis)}`)
    }
    if (options.prefix !== undefined && typeof options.prefix !== 'string') {
      throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "prefix" option must be a string. Received ${describe(options.prefix)}`)
    }
    this.prefix = options.prefix ?? 'volley:{rs}:'
    this.#redis = redis
    const run = {} as Record<ScriptName, Runner>
    for (const [name, lua] of Object.entries(scripts) as Array<[ScriptName, string]>) {
      redis.defineCommand(name, { numberOfKeys: 1, lua })
      // The Buffer form of the command: responses are bytes, and come back as they went.
      const method = (redis as unknown as Record<string, Runner>)[`${name}Buffer`]
      if (typeof method !== 'function') throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', 'The "redis" argument did not take a defined command: is it an ioredis client?')
      run[name] = method.bind(redis)
    }
    this.#run = run
  }

  async create(gateway: string, session: StoredSession): Promise<void> {
    await this.#run.volleyRsCreate(
      this.prefix,
      session.sessionId,
      session.clientId === undefined ? '' : String(session.clientId),
      JSON.stringify([...session.capabilities]),
      String(session.expiresAt),
      String(session.evictedBelow),
      gateway,
    )
  }

  async claim(gateway: string, sessionId: string, clientId: bigint | undefined, now: number, expiresAt: number): Promise<ClaimedSession | ClaimRefusal> {
    const reply = (await this.#run.volleyRsClaim(this.prefix, sessionId, clientId === undefined ? '' : String(clientId), gateway, String(now), String(expiresAt))) as Reply[]
    const outcome = text(reply[0])
    if (outcome !== 'ok') return outcome as ClaimRefusal
    const pairs = reply[5] as Buffer[]
    const responses = new Map<number, Uint8Array>()
    for (let index = 0; index < pairs.length; index += 2) responses.set(Number(text(pairs[index])), new Uint8Array(pairs[index + 1]!))
    return {
      sessionId,
      clientId: parseClientId(text(reply[2])),
      capabilities: parseCapabilities(text(reply[3])),
      expiresAt,
      evictedBelow: Number(text(reply[4])),
      previousGateway: text(reply[1]),
      responses,
    }
  }

  async expire(gateway: string, sessionId: string): Promise<boolean> {
    return (await this.#run.volleyRsExpire(this.prefix, sessionId, gateway)) === 1
  }

  async recordResponse(sessionId: string, requestId: number, result: Uint8Array): Promise<Uint8Array> {
    const recorded = await this.#run.volleyRsRecord(this.prefix, sessionId, String(requestId), Buffer.from(result.buffer, result.byteOffset, result.byteLength))
    return new Uint8Array(recorded as Buffer)
  }

  async tick(gateway: string, tick: StoreTick): Promise<StoreTickResult> {
    const args: string[] = [gateway, String(tick.now), String(tick.gatewayTtlMs), String(tick.graceExpiresAt), String(tick.takeOverLimit)]
    args.push(String(tick.expiries.length))
    for (const [sessionId, expiresAt] of tick.expiries) args.push(sessionId, String(expiresAt))
    args.push(String(tick.evictions.length))
    for (const [sessionId, below] of tick.evictions) args.push(sessionId, String(below))
    args.push(String(tick.expired.length))
    for (const sessionId of tick.expired) args.push(sessionId)
    const [lost, ended, taken] = (await this.#run.volleyRsTick(this.prefix, ...args)) as [Buffer[], Buffer[], Buffer[]]
    const sessions: StoredSession[] = []
    for (let index = 0; index < taken.length; index += 4) {
      sessions.push({
        sessionId: text(taken[index]),
        clientId: parseClientId(text(taken[index + 1])),
        capabilities: parseCapabilities(text(taken[index + 2])),
        expiresAt: tick.graceExpiresAt,
        evictedBelow: Number(text(taken[index + 3])),
      })
    }
    return { lost: lost.map(text), ended: ended.map(text), taken: sessions }
  }

  onClaimedAway(gateway: string, listener: (sessionId: string) => void): () => void {
    const channel = `${this.prefix}lost:${gateway}`
    const subscriber = this.#redis.duplicate()
    subscriber.on('message', (from, sessionId) => {
      if (from === channel) listener(sessionId)
    })
    // A failed subscription shows as the store's tick 'lost' list instead, a tick later.
    subscriber.subscribe(channel).catch(noop)
    return () => void subscriber.quit().catch(noop)
  }
}

function text(value: Reply | undefined): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value)
}

function parseClientId(value: string): bigint | undefined {
  return value === '' ? undefined : BigInt(value)
}

function parseCapabilities(value: string): ReadonlyMap<string, string> {
  return new Map(JSON.parse(value) as Array<[string, string]>)
}

function noop(): void {}
