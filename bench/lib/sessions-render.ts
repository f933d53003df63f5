// The sessions benchmark's figures: the headline summary (with the targets), the readable tables,
// and the one-line history record.
import { runStamp } from './history-lines.ts'
import { microseconds, table } from './format.ts'
import type { FanOutResult, PairsResult } from './sessions-phases.ts'
import type { SessionsOptions } from './sessions-options.ts'
import type { SystemInfo } from './system.ts'

/** Issue 57's targets. */
export const TARGETS = {
  /** MASH's request/response pair over a bare reliable-channel echo's, µs of CPU. */
  pairOverheadUs: 2,
  /** Gateway RSS per subscription, bytes. */
  rssPerSubscriptionBytes: 1024,
} as const

export interface Target {
  what: string
  value: number | boolean
  unit: string
  target: string
  /** null: not judged (the run was too small for the figure to mean anything). */
  met: boolean | null
}

/** Below this many subscriptions, their RSS is lost in the process's own ups and downs (pages V8 and malloc keep or return). */
const RSS_JUDGED_FROM_SUBSCRIPTIONS = 10_000

export interface SessionsSummary {
  notificationsPerSecond: number | null
  allNotificationsArrived: boolean | null
  gatewayCpuPerNotificationUs: number | null
  gatewayCpuPerNotificationNetUs: number | null
  rssPerSubscriptionBytes: number | null
  heapPerSubscriptionBytes: number | null
  pairs: { mashUs: number; echoUs: number; differenceUs: number; memoryMashUs: number; memoryEchoUs: number; memoryDifferenceUs: number } | null
  targets: Target[]
  notes: string[]
}

const finiteOrNull = (value: number): number | null => (Number.isFinite(value) ? value : null)

export function summarizeSessions(fanOut: FanOutResult | null, pairs: PairsResult | null, notes: string[]): SessionsSummary {
  const targets: Target[] = []
  if (fanOut !== null) {
    const rss = fanOut.memory.rssPerSubscription
    targets.push({
      what: `gateway RSS per subscription (${fanOut.subscriptionsMade.toLocaleString('en-US')} subscriptions)`,
      value: rss,
      unit: 'B',
      target: `< ${TARGETS.rssPerSubscriptionBytes} B`,
      met: fanOut.subscriptionsMade < RSS_JUDGED_FROM_SUBSCRIPTIONS ? null : rss >= 0 && rss < TARGETS.rssPerSubscriptionBytes,
    })
    targets.push({ what: 'every notification sent arrived', value: fanOut.delivery.allArrived, unit: '', target: 'yes', met: fanOut.delivery.allArrived })
  }
  if (pairs !== null) {
    const { differenceUs } = pairs.summary.volley
    targets.push({
      what: 'CPU per request/response pair, MASH read − bare reliable-channel echo (both processes)',
      value: differenceUs,
      unit: 'µs',
      target: `≤ +${TARGETS.pairOverheadUs} µs`,
      met: differenceUs <= TARGETS.pairOverheadUs,
    })
  }
  return {
    notificationsPerSecond: fanOut === null ? null : finiteOrNull(fanOut.steady.notificationsPerSecond),
    allNotificationsArrived: fanOut === null ? null : fanOut.delivery.allArrived,
    gatewayCpuPerNotificationUs: fanOut === null ? null : finiteOrNull(fanOut.steady.cpuPerNotificationUs),
    gatewayCpuPerNotificationNetUs: fanOut === null ? null : finiteOrNull(fanOut.steady.cpuPerNotificationNetUs),
    rssPerSubscriptionBytes: fanOut === null ? null : finiteOrNull(fanOut.memory.rssPerSubscription),
    heapPerSubscriptionBytes: fanOut === null ? null : finiteOrNull(fanOut.memory.heapUsedPerSubscription),
    pairs:
      pairs === null
        ? null
        : {
            mashUs: pairs.summary.volley.mash.cpuPerPairUs,
            echoUs: pairs.summary.volley.echo.cpuPerPairUs,
            differenceUs: pairs.summary.volley.differenceUs,
            memoryMashUs: pairs.summary.memory.mash.cpuPerPairUs,
            memoryEchoUs: pairs.summary.memory.echo.cpuPerPairUs,
            memoryDifferenceUs: pairs.summary.memory.differenceUs,
          },
    targets,
    notes,
  }
}

const thousands = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–')
const bytes = (value: number): string => (Number.isFinite(value) ? `${Math.round(value).toLocaleString('en-US')} B` : '–')
const share = (value: number): string => (Number.isFinite(value) ? `${(value * 100).toFixed(0)} %` : '–')

export function renderSessions(summary: SessionsSummary, fanOut: FanOutResult | null, pairs: PairsResult | null, options: SessionsOptions, system: SystemInfo): string {
  const lines: string[] = [`## bench:sessions, ${system.date.slice(0, 16).replace('T', ' ')} UTC, ${system.cpuModel} (${system.cpus} CPUs), Node ${system.node}, pinning ${options.pin}`, '']
  if (fanOut !== null) {
    const { steady, baselines, memory } = fanOut
    const controllersCpu = steady.controllers.reduce((total, window) => total + window.cpuUs, 0) / 1e6 / steady.seconds
    lines.push(
      `### Fan-out: ${fanOut.devices.toLocaleString('en-US')} devices × ${options.subscriptions} subscriptions × ${options.attributes} attributes behind one gateway, ` +
        `${options.changeRate} change/s per attribute, minInterval ${options.minIntervalMs} ms`,
      '',
      table(
        ['figure', 'value'],
        [
          ['controllers connected', `${thousands(fanOut.connect.connected)} in ${(fanOut.connect.ms / 1000).toFixed(1)} s`],
          ['subscriptions made', `${thousands(fanOut.subscriptionsMade)} of ${thousands(fanOut.subscriptionsAsked)} in ${(fanOut.subscribeMs / 1000).toFixed(1)} s`],
          ['changes a second at the gateway (steady window), made of asked', `${thousands(steady.changesPerSecond)} of ${thousands(steady.changesAskedPerSecond)}`],
          [
            '**notifications a second received by the controllers**',
            `**${thousands(steady.notificationsPerSecond)}** (sent ${thousands(steady.notificationsSent / steady.seconds)}; ${(steady.notificationsPerSecond / fanOut.subscriptionsMade).toFixed(2)} per subscription)`,
          ],
          ['values per notification', Number.isFinite(steady.valuesPerNotification) ? steady.valuesPerNotification.toFixed(2) : '–'],
          ['**gateway CPU per notification** (user + system, all threads)', `**${microseconds(steady.cpuPerNotificationUs)} µs**`],
          ['… of it on the JS thread / other threads (I/O)', `${microseconds(steady.jsThreadPerNotificationUs)} / ${microseconds(steady.otherThreadsPerNotificationUs)} µs`],
          ['… less the changes baseline (subscriptions and notifications only)', `${microseconds(steady.cpuPerNotificationNetUs)} µs`],
          ['gateway CPU: idle / changes, no subscriptions / steady window', `${share(baselines.idle.cpuShare)} / ${share(baselines.changes.cpuShare)} / ${share(steady.gateway.cpuShare)} of a core`],
          ['gateway CPU per change, no subscriptions (less the idle baseline)', `${microseconds(baselines.changes.cpuPerChangeUs)} µs`],
          ['controllers CPU (their process)', `${share(controllersCpu)} of a core`],
          [
            'gateway event loop delay in the window: mean / 99th percentile / max',
            `${steady.eventLoopDelay.meanMs.toFixed(1)} / ${steady.eventLoopDelay.p99Ms.toFixed(1)} / ${steady.eventLoopDelay.maxMs.toFixed(1)} ms`,
          ],
          ['gateway connections waiting for a drain at once, most (messages they held)', `${thousands(steady.backPressure.mostWaiting)} (${thousands(steady.backPressure.mostHeld)})`],
          ['change loop: most changes behind at a tick / skipped in the window (a period behind)', `${thousands(steady.changeBacklog)} / ${thousands(steady.changesSkipped)}`],
          ['**gateway RSS per subscription** (with them − without, after a full GC each)', `**${bytes(memory.rssPerSubscription)}**`],
          [
            '… of it: JS heap in use / heap V8 holds / outside the heap',
            `${bytes(memory.perSubscription.heapUsed)} / ${bytes(memory.perSubscription.heapTotal)} / ${bytes(memory.perSubscription.outsideHeap)}`,
          ],
          ['gateway RSS per subscription once the changes stopped and the last notifications went', bytes(memory.rssPerSubscriptionQuiet)],
          ['gateway RSS per device (its model, before any connection)', bytes(memory.rssPerDevice)],
          ['**every notification arrived**', `**${fanOut.delivery.allArrived ? 'yes' : 'no'}** (${thousands(fanOut.delivery.received)} received; ${thousands(fanOut.delivery.sent)} sent before they were counted)`],
          ['controllers: UDP receive drops in the window / connections lost', `${thousands(steady.controllersReceiveDrops)} / ${thousands(fanOut.controllerDisconnects)}`],
          [
            'other processes on the pinned cores in the window: gateway / controllers (the latter approximate)',
            steady.disturbance === null
              ? '–'
              : `${steady.disturbance.testedCpuSeconds.toFixed(2)} / ${steady.disturbance.counterpartCpuSeconds.toFixed(2)} s of ${steady.seconds.toFixed(1)} s${steady.disturbed ? ' (**disturbed**)' : ''}`,
          ],
        ],
        'lr',
      ),
      '',
    )
  }
  if (pairs !== null) {
    const { volley, memory } = pairs.summary
    const row = (what: string, kind: { cpuPerPairUs: number; serverPerPairUs: number; clientPerPairUs: number; rate: number }, both: boolean): string[] => [
      what,
      microseconds(kind.cpuPerPairUs),
      both ? microseconds(kind.serverPerPairUs) : '–',
      both ? microseconds(kind.clientPerPairUs) : '–',
      thousands(kind.rate),
    ]
    const signed = (value: number): string => (Number.isFinite(value) ? `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(2)}` : '–')
    lines.push(
      `### Request/response pairs: ${pairs.window} outstanding, ${options.rounds} rounds of ${pairs.seconds} s per kind, ` +
        `medians of the rounds other processes left alone (over Volley ${volley.rounds} of ${options.rounds}, in memory ${memory.rounds} of ${options.rounds})`,
      '',
      table(
        ['pair', 'CPU µs/pair', 'server', 'client', 'pairs/s'],
        [
          row('MASH read over Volley (client + server process)', volley.mash, true),
          row('bare reliable-channel echo, same connection', volley.echo, true),
          ['**MASH − echo** (per round, median)', `**${signed(volley.differenceUs)}**`, '', '', ''],
          row('MASH read in memory (one process: both sides)', memory.mash, false),
          row('bare echo in memory', memory.echo, false),
          ['MASH − echo in memory: the session layer alone', signed(memory.differenceUs), '', '', ''],
        ],
        'lrrrr',
      ),
      '',
    )
  }
  if (summary.targets.length > 0) {
    lines.push(
      table(
        ['target', 'value', 'wanted', 'met'],
        summary.targets.map((target) => [
          target.what,
          typeof target.value === 'boolean' ? (target.value ? 'yes' : 'no') : `${target.unit === 'µs' ? target.value.toFixed(2) : Math.round(target.value).toLocaleString('en-US')} ${target.unit}`,
          target.target,
          target.met === null ? `not judged (under ${RSS_JUDGED_FROM_SUBSCRIPTIONS.toLocaleString('en-US')} subscriptions)` : target.met ? 'met' : '**not met**',
        ]),
        'lrrl',
      ),
    )
  }
  for (const note of summary.notes) lines.push(`- ${note}`)
  return lines.join('\n')
}

/** The compact line of sessions-history.jsonl: when, where, and the headline figures. */
export function historyLine(summary: SessionsSummary, options: SessionsOptions, system: SystemInfo, complete: boolean, fanOutDisturbed: boolean | null): Record<string, unknown> {
  const round = (value: number | null | undefined, digits = 2): number | null => (value === null || value === undefined || !Number.isFinite(value) ? null : Number(value.toFixed(digits)))
  return {
    date: runStamp(system.date),
    cpu: system.cpuModel,
    kernel: system.kernel,
    node: system.node,
    complete,
    devices: options.devices,
    subscriptions: options.devices * options.subscriptions,
    notificationsPerSecond: round(summary.notificationsPerSecond, 0),
    allArrived: summary.allNotificationsArrived,
    gatewayCpuPerNotificationUs: round(summary.gatewayCpuPerNotificationUs),
    rssPerSubscriptionBytes: round(summary.rssPerSubscriptionBytes, 0),
    heapPerSubscriptionBytes: round(summary.heapPerSubscriptionBytes, 0),
    fanOutDisturbed,
    pairs:
      summary.pairs === null
        ? null
        : {
            mashUs: round(summary.pairs.mashUs),
            echoUs: round(summary.pairs.echoUs),
            differenceUs: round(summary.pairs.differenceUs),
            memoryMashUs: round(summary.pairs.memoryMashUs),
            memoryEchoUs: round(summary.pairs.memoryEchoUs),
          },
  }
}
