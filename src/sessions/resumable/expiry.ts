// When sessions expire, without scanning them: every refresh of a lane sets expiry = now + the lane's one
// duration, so a lane kept in refresh order is also in expiry order. A refresh moves the session to the
// tail (O(1), no allocation), and the cleanup tick takes expired sessions from the head until it meets one
// that is not: its cost is the sessions that expire, not the sessions there are.

/** What a lane keeps in each of its sessions. */
export interface ExpiryEntry {
  /** When it expires, ms on the server's clock. */
  expiresAt: number
  previous: ExpiryEntry | null
  next: ExpiryEntry | null
  lane: ExpiryLane | null
}

/** One duration's sessions, in expiry order. */
export class ExpiryLane {
  #head: ExpiryEntry | null = null
  #tail: ExpiryEntry | null = null
  /** The first entry not yet warned: warnings go out in order too, so the warned ones are a prefix. */
  #firstUnwarned: ExpiryEntry | null = null
  #size = 0
  /** How long before its expiry an entry's warning is due, whole ms. */
  readonly #warnLeadMs: number

  /** durationMs: how long a refresh holds a session; warnFraction: when in it the warning goes (0.85). */
  constructor(
    readonly durationMs: number,
    warnFraction: number,
  ) {
    this.#warnLeadMs = durationMs - Math.floor(durationMs * warnFraction)
  }

  get size(): number {
    return this.#size
  }

  /** Sets the entry's expiry to now + durationMs, moving it here from wherever it was. */
  refresh(entry: ExpiryEntry, now: number): void {
    entry.lane?.remove(entry)
    entry.expiresAt = now + this.durationMs
    entry.lane = this
    entry.previous = this.#tail
    entry.next = null
    if (this.#tail === null) this.#head = entry
    else this.#tail.next = entry
    this.#tail = entry
    this.#firstUnwarned ??= entry
    this.#size++
  }

  remove(entry: ExpiryEntry): void {
    if (entry.lane !== this) return
    if (this.#firstUnwarned === entry) this.#firstUnwarned = entry.next
    if (entry.previous === null) this.#head = entry.next
    else entry.previous.next = entry.next
    if (entry.next === null) this.#tail = entry.previous
    else entry.next.previous = entry.previous
    entry.previous = entry.next = null
    entry.lane = null
    this.#size--
  }

  /** The first entry whose expiry is at or before now, removed; null when none is. */
  takeExpired(now: number): ExpiryEntry | null {
    const head = this.#head
    if (head === null || head.expiresAt > now) return null
    this.remove(head)
    return head
  }

  /** The next entry whose warning is due at now (it stays in the lane, warned); null when none is. */
  takeWarning(now: number): ExpiryEntry | null {
    const entry = this.#firstUnwarned
    if (entry === null || entry.expiresAt - this.#warnLeadMs > now) return null
    this.#firstUnwarned = entry.next
    return entry
  }
}
