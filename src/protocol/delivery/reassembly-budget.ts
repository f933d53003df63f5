// The reassembly memory the connections of one server may hold between them (native/protocol/delivery/
// reassembly_budget.h, which says why): each message a connection starts takes its cost until it is
// delivered or dropped, each reliable queue slot past a channel's first ones its size; a take that does not
// fit evicts the stalest connection if it has been idle long enough, and so on, or is refused.

/** What the budget asks of a connection's delivery core. */
export interface BudgetMember {
  /** What it holds of the budget (kept by the budget). */
  budgetHeld: number
  /** Its last new fragment stored (kept by the budget's progress()). */
  lastFragmentUs: number
  /** Whether it may be evicted: no new fragment for a second (or 4 smoothed RTTs). */
  idleForBudget(nowUs: number): boolean
  /** Frees what it holds (giving it back), stalling it if a reliable message was among it. */
  evictForBudget(): void
}

export class ReassemblyBudget {
  readonly limit: number
  used = 0
  /** Connections evicted to make room. */
  evictions = 0
  /** Takes refused for want of room. */
  refusals = 0
  /** The connections holding some of the budget, the stalest first (a Set keeps the order of insertion). */
  readonly #order = new Set<BudgetMember>()

  constructor(limitBytes: number) {
    this.limit = limitBytes
  }

  /** Takes `bytes` for `member`, evicting idle connections (other than it) if need be; false when they do not fit. */
  take(member: BudgetMember, bytes: number, nowUs: number): boolean {
    // A take is no progress of its own (a refused one must not keep the taker from being evicted): the
    // fragment stored after it is (progress()).
    while (this.used + bytes > this.limit) {
      // The stalest other than the taker: if it is not idle, none is.
      let stalest: BudgetMember | undefined
      for (const candidate of this.#order) {
        if (candidate === member) continue
        stalest = candidate
        break
      }
      if (stalest === undefined || !stalest.idleForBudget(nowUs)) {
        this.refusals++
        return false
      }
      this.evictions++
      stalest.evictForBudget() // gives back all it held, which takes it off the list
      this.#order.delete(stalest) // (never listed still: but the loop must end whatever it kept)
    }
    this.used += bytes
    member.budgetHeld += bytes
    this.#order.add(member)
    return true
  }

  give(member: BudgetMember, bytes: number): void {
    this.used -= bytes
    member.budgetHeld -= bytes
    if (member.budgetHeld === 0) this.#order.delete(member)
  }

  /** A new fragment stored by `member`: it moves to the back of the eviction order. */
  progress(member: BudgetMember, nowUs: number): void {
    member.lastFragmentUs = nowUs
    if (!this.#order.has(member)) return
    this.#order.delete(member)
    this.#order.add(member)
  }
}
