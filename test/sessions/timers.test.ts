// The session timers: one heap, re-armed in place; FakeClock's order of firing; the process queue's single JS
// timer, and its turns of bounded length when many deadlines fall due together.
import { describe, expect, it } from 'vitest'
import { FakeClock, Timer, TimerQueue } from '../../src/sessions/timers.ts'

describe('FakeClock', () => {
  it('fires timers in deadline order, each at its own time, re-armed and disarmed in place', () => {
    const clock = new FakeClock(100)
    const fired: string[] = []
    const make = (name: string) => new Timer((now) => fired.push(`${name}@${now}`))
    const [a, b, c, d] = [make('a'), make('b'), make('c'), make('d')]
    clock.arm(a, 300)
    clock.arm(b, 200)
    clock.arm(c, 250)
    clock.arm(d, 150)
    clock.arm(a, 120) // moved earlier
    clock.disarm(c)
    clock.arm(b, 400) // moved later
    expect(clock.size).toBe(3)
    expect(clock.nextDeadline).toBe(120)
    clock.advance(250)
    expect(fired).toEqual(['a@120', 'd@150'])
    expect(clock.now()).toBe(350)
    clock.advance(50)
    expect(fired).toEqual(['a@120', 'd@150', 'b@400'])
    expect(clock.size).toBe(0)
    expect(a.armed).toBe(false)
  })

  it('a timer re-armed by its own callback runs again only when due', () => {
    const clock = new FakeClock()
    const times: number[] = []
    const tick = new Timer((now) => {
      times.push(now)
      if (times.length < 5) clock.arm(tick, now + 10)
    })
    clock.arm(tick, 10)
    clock.advance(35)
    expect(times).toEqual([10, 20, 30])
    clock.advance(100)
    expect(times).toEqual([10, 20, 30, 40, 50])
  })

  it('keeps heap order under random arms, moves and disarms (checked against a sort)', () => {
    const clock = new FakeClock()
    let seed = 7
    const random = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31)
    const fired: number[] = []
    const timers = Array.from({ length: 500 }, () => new Timer((now) => fired.push(now)))
    const deadlines = new Map<Timer, number>()
    for (let step = 0; step < 5_000; step++) {
      const timer = timers[Math.floor(random() * timers.length)]!
      if (random() < 0.2) {
        clock.disarm(timer)
        deadlines.delete(timer)
      } else {
        const deadline = 1 + Math.floor(random() * 100_000)
        clock.arm(timer, deadline)
        deadlines.set(timer, deadline)
      }
    }
    clock.advance(200_000)
    expect(fired).toEqual([...deadlines.values()].sort((x, y) => x - y))
  })
})

describe('TimerQueue', () => {
  it('fires on real time through one JS timer', async () => {
    const queue = new TimerQueue()
    const order: number[] = []
    const done = new Promise<void>((resolve) => {
      for (const delay of [30, 10, 20]) queue.arm(new Timer(() => (order.push(delay), order.length === 3 && resolve())), queue.now() + delay)
    })
    const cancelled = new Timer(() => order.push(-1))
    queue.arm(cancelled, queue.now() + 15)
    queue.disarm(cancelled)
    await done
    expect(order).toEqual([10, 20, 30])
    expect(queue.size).toBe(0)
  })

  it('runs many timers due at once a few milliseconds at a time, letting the event loop turn in between', async () => {
    const queue = new TimerQueue()
    const at = queue.now()
    let ran = 0
    let turnsBetween = 0
    let finished!: () => void
    const done = new Promise<void>((resolve) => (finished = resolve))
    const count = 2_000
    for (let i = 0; i < count; i++) {
      queue.arm(
        new Timer(() => {
          const until = performance.now() + 0.05 // each callback busy for 50 µs: 100 ms in all
          while (performance.now() < until);
          if (++ran === count) finished()
        }),
        at,
      )
    }
    const watch = setInterval(() => turnsBetween++, 0)
    await done
    clearInterval(watch)
    expect(ran).toBe(count)
    // 100 ms of callbacks in one turn would leave the interval no turn at all.
    expect(turnsBetween).toBeGreaterThan(2)
  })
})
