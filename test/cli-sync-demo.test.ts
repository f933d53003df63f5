// The agent sync demo (npm run demo:sync) as a user runs it, small: a full sync and a round of changes through
// 5 % loss each way, over each channel, then the integrity check; every copy equal, status 0. And a refusal.
import { describe, expect, it } from 'vitest'
import { figure, runDemo } from './demo-runs.ts'

const syncDemo = 'src/cli/sync-demo.ts'

describe('the agent sync demo (npm run demo:sync)', () => {
  it.each([['unreliable'], ['reliable']])('syncs 3 agents over the %s channel through a lossy link, every copy equal to its agent', async (channel) => {
    const { status, stdout, stderr } = await runDemo(syncDemo, ['--agents', '3', '--items', '2000', '--channel', channel], { timeoutMs: 60_000 })
    expect(stderr).toBe('')
    expect(status, stdout).toBe(0)
    expect(stdout).toMatch(new RegExp(`3 agents × 2,000 packages over the ${channel} channel, 5 % of the datagrams lost each way`))
    expect(figure(stdout, 'full', /full\s+([\d,]+) items/)).toBe(6000)
    expect(figure(stdout, 'check', /(\d+) of 3 agents' checksums match/)).toBe(3)
    expect(figure(stdout, 'copies', /(\d+) of 3 agents' copies equal/)).toBe(3)
    expect(figure(stdout, 'resent', /resent\s+[\d,]+ items asked for again in [\d,]+ ReqRets; ([\d,]+) datagrams lost/)).toBeGreaterThan(0)
    if (channel === 'unreliable') expect(figure(stdout, 'resent', /resent\s+([\d,]+) items/)).toBeGreaterThan(0)
  })

  it('refuses a channel it does not know, naming the choices', async () => {
    const { status, stderr } = await runDemo(syncDemo, ['--channel', 'sequenced'])
    expect(status).toBe(2)
    expect(stderr).toMatch(/--channel must be unreliable or reliable. Received 'sequenced'/)
  })
})
