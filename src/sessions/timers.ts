// Time for the session protocols: one clock interface, and one timer heap per process behind a single JS
// timer, so that 10,000 sessions with several subscriptions each are not tens of thousands of JS timers.
// FakeClock runs the same heap on time a test advances: a 95 s keep-alive timeout runs in microseconds.

/** A monotonic clock, in milliseconds (fractions allowed). */
export interface Clock {
  now(): number
}

// No allocation per change: a session core keeps one per deadline it tracks.
/**
 * One timer of a Scheduler: armed, re-armed and disarmed in place (scheduler.arm(), scheduler.disarm()),
 * its callback given the time it runs at.
 */
export class Timer {
  /** When it fires, ms on its scheduler's clock; Infinity while disarmed. */
  deadline = Infinity
  /** Its place in its scheduler's queue; -1 while disarmed (for a Scheduler's own use). */
  heapIndex = -1

  /** `fire` runs when the timer is due, with the scheduler's time then. */
  constructor(readonly fire: (now: number) => void) {}

  /** Whether it is armed. */
  get armed(): boolean {
    return this.heapIndex >= 0
  }
}

/** A clock that also runs timers: the process's TimerQueue, or a FakeClock in tests. */
export interface Scheduler extends Clock {
  /** Arms (or moves) the timer to fire at `deadline` ms; a deadline in the past fires at the next run. */
  arm(timer: Timer, deadline: number): void
  disarm(timer: Timer): void
}

/** The timers of a scheduler, ordered by deadline, each knowing its place so that re-arming is O(log n). */
class TimerHeap {
  readonly #items: Timer[] = []

  get size(): number {
    return this.#items.length
  }

  top(): Timer | undefined {
    return this.#items[0]
  }

  set(timer: Timer, deadline: number): void {
    const items = this.#items
    timer.deadline = deadline
    if (timer.heapIndex < 0) {
      timer.heapIndex = items.length
      items.push(timer)
      this.#up(timer.heapIndex)
    } else {
      this.#down(this.#up(timer.heapIndex))
    }
  }

  remove(timer: Timer): void {
    const at = timer.heapIndex
    if (at < 0) return
    const items = this.#items
    const last = items.pop()!
    timer.heapIndex = -1
    timer.deadline = Infinity
    if (last === timer) return
    items[at] = last
    last.heapIndex = at
    this.#down(this.#up(at))
  }

  #up(at: number): number {
    const items = this.#items
    const timer = items[at]!
    while (at > 0) {
      const parent = (at - 1) >> 1
      const above = items[parent]!
      if (above.deadline <= timer.deadline) break
      items[at] = above
      above.heapIndex = at
      at = parent
    }
    items[at] = timer
    timer.heapIndex = at
    return at
  }

  #down(at: number): void {
    const items = this.#items
    const timer = items[at]!
    for (;;) {
      const left = 2 * at + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && items[right]!.deadline < items[left]!.deadline ? right : left
      const below = items[child]!
      if (below.deadline >= timer.deadline) break
      items[at] = below
      below.heapIndex = at
      at = child
    }
    items[at] = timer
    timer.heapIndex = at
  }
}

/** Runs the due timers of a heap at `now`, each once, in deadline order; a timer a callback re-arms runs again only if due. */
function runDue(heap: TimerHeap, now: number): void {
  for (;;) {
    const timer = heap.top()
    if (timer === undefined || timer.deadline > now) return
    heap.remove(timer)
    timer.fire(now)
  }
}

/**
 * The process's timers for session protocols: one heap and one unreferenced JS timer set to its earliest
 * deadline (the connections under the sessions are what keep a process alive, not their timers).
 */
export class TimerQueue implements Scheduler {
  readonly #heap = new TimerHeap()
  #handle: NodeJS.Timeout | undefined
  /** The deadline the JS timer is set for; Infinity when none is. */
  #armedFor = Infinity

  now(): number {
    return performance.now()
  }

  /** How many timers are armed. */
  get size(): number {
    return this.#heap.size
  }

  arm(timer: Timer, deadline: number): void {
    this.#heap.set(timer, deadline)
    if (deadline < this.#armedFor) this.#schedule()
  }

  disarm(timer: Timer): void {
    this.#heap.remove(timer)
    // A JS timer set for a deadline no longer armed fires early and finds nothing due: cheaper than clearing it.
  }

  #schedule(): void {
    if (this.#handle !== undefined) clearTimeout(this.#handle)
    this.#handle = undefined
    this.#armedFor = Infinity
    const first = this.#heap.top()
    if (first === undefined) return
    this.#armedFor = first.deadline
    // setTimeout rounds to whole ms and may fire a little early; #run takes only what is due, and the rest waits.
    // Node fires a delay past 2^31 - 1 ms at once: a farther deadline takes a hop of that length first.
    this.#handle = setTimeout(this.#run, Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(first.deadline - this.now())))).unref()
  }

  readonly #run = (): void => {
    // While it runs, arm() from a callback only updates the heap (armedFor -Infinity): one JS timer is set
    // at the end, for what is then first, not one per re-armed timer.
    if (this.#handle !== undefined) clearTimeout(this.#handle)
    this.#handle = undefined
    this.#armedFor = -Infinity
    const now = this.now()
    let ran = 0
    let yielded = false
    try {
      for (;;) {
        const timer = this.#heap.top()
        if (timer === undefined || timer.deadline > now) break
        this.#heap.remove(timer)
        timer.fire(now)
        // Deadlines that fall due together (windows opened in one busy turn close in one) are run a few
        // milliseconds' worth at a time, the I/O in between: a loaded gateway keeps reading its connections.
        if (++ran % 8 === 0 && this.now() - now > TURN_BUDGET_MS) {
          yielded = true
          setImmediate(this.#run)
          return
        }
      }
    } finally {
      if (!yielded) {
        this.#armedFor = Infinity
        this.#schedule()
      }
    }
  }
}

const MAX_TIMEOUT_MS = 2 ** 31 - 1
/** How long one turn of the event loop runs due session timers before it lets I/O in, ms. */
const TURN_BUDGET_MS = 20

let processQueue: TimerQueue | undefined

/** The process's one TimerQueue, every session's default scheduler. */
export function sessionTimers(): TimerQueue {
  processQueue ??= new TimerQueue()
  return processQueue
}

/** A scheduler on time that only advance() moves: for tests of timeouts, heartbeats and backoff. */
export class FakeClock implements Scheduler {
  readonly #heap = new TimerHeap()
  #now: number

  constructor(startMs = 0) {
    this.#now = startMs
  }

  now(): number {
    return this.#now
  }

  /** How many timers are armed. */
  get size(): number {
    return this.#heap.size
  }

  /** The earliest armed deadline; Infinity when none is. */
  get nextDeadline(): number {
    return this.#heap.top()?.deadline ?? Infinity
  }

  arm(timer: Timer, deadline: number): void {
    this.#heap.set(timer, deadline)
  }

  disarm(timer: Timer): void {
    this.#heap.remove(timer)
  }

  /** Moves time on by `ms`, firing each timer due on the way at its own deadline, in order. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms)
  }

  advanceTo(targetMs: number): void {
    for (;;) {
      const timer = this.#heap.top()
      if (timer === undefined || timer.deadline > targetMs) break
      this.#now = Math.max(this.#now, timer.deadline)
      runDue(this.#heap, this.#now)
    }
    this.#now = Math.max(this.#now, targetMs)
  }
}
