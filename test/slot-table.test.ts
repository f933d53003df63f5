// SlotTable: the per-slot tables of a server (server.peers among them), a ReadonlyMap over a dense array.
import { describe, expect, it } from 'vitest'
import { SlotTable } from '../src/util/slot-table.ts'

describe('SlotTable', () => {
  it('keeps values by index and counts them, as a Map does', () => {
    const table = new SlotTable<string>()
    expect(table.size).toBe(0)
    expect(table.get(0)).toBeUndefined()
    expect(table.delete(3)).toBe(false) // past the end: nothing, and nothing grown
    expect(table.set(2, 'c')).toBe(table)
    table.set(0, 'a').set(2, 'C') // replacing is not adding
    expect(table.size).toBe(2)
    expect([table.get(0), table.get(1), table.get(2)]).toEqual(['a', undefined, 'C'])
    expect([table.has(0), table.has(1), table.has(2), table.has(5)]).toEqual([true, false, true, false])
    expect(table.delete(0)).toBe(true)
    expect(table.delete(0)).toBe(false)
    expect(table.size).toBe(1)
    table.clear()
    expect(table.size).toBe(0)
    expect(table.get(2)).toBeUndefined()
  })

  it('iterates in index order, every way a ReadonlyMap can be read', () => {
    const table = new SlotTable<string>()
    table.set(5, 'f').set(1, 'b').set(3, 'd')
    expect([...table]).toEqual([[1, 'b'], [3, 'd'], [5, 'f']])
    expect([...table.entries()]).toEqual([[1, 'b'], [3, 'd'], [5, 'f']])
    expect([...table.keys()]).toEqual([1, 3, 5])
    expect([...table.values()]).toEqual(['b', 'd', 'f'])
    expect(new Map(table)).toEqual(new Map([[1, 'b'], [3, 'd'], [5, 'f']]))
    const seen: string[] = []
    const self = { prefix: '>' }
    table.forEach(function (this: typeof self, value, index, map) {
      expect(map).toBe(table)
      seen.push(`${this.prefix}${index}${value}`)
    }, self)
    expect(seen).toEqual(['>1b', '>3d', '>5f'])
    expect(Object.prototype.toString.call(table)).toBe('[object SlotTable]')
  })

  it('iterates live: a slot emptied meanwhile is passed over, one filled ahead is visited', () => {
    const table = new SlotTable<string>()
    table.set(0, 'a').set(1, 'b').set(2, 'c')
    const seen: number[] = []
    for (const [index] of table) {
      seen.push(index)
      if (index === 0) {
        table.delete(1)
        table.set(4, 'e')
      }
    }
    expect(seen).toEqual([0, 2, 4])
  })

  it('takes a far index first, and the ones below it after', () => {
    const table = new SlotTable<number>()
    table.set(10_000, 1)
    for (let i = 0; i < 10_000; i++) table.set(i, i)
    expect(table.size).toBe(10_001)
    expect(table.get(10_000)).toBe(1)
    expect([...table.keys()].length).toBe(10_001)
  })

  it('hands out a view that reads the table live and cannot change it', () => {
    const table = new SlotTable<string>()
    table.set(1, 'b')
    const view = table.view
    expect(table.view).toBe(view) // one view per table
    table.set(3, 'd')
    expect([view.size, view.get(3), view.has(1), view.has(2)]).toEqual([2, 'd', true, false])
    expect([...view]).toEqual([[1, 'b'], [3, 'd']])
    expect([...view.keys()]).toEqual([1, 3])
    expect([...view.values()]).toEqual(['b', 'd'])
    expect([...view.entries()]).toEqual([[1, 'b'], [3, 'd']])
    const maps: unknown[] = []
    view.forEach((_value, _index, map) => maps.push(map))
    expect(maps).toEqual([view, view]) // the view, not the table behind it
    for (const name of ['set', 'delete', 'clear']) expect(name in view).toBe(false)
    expect(Object.prototype.toString.call(view)).toBe('[object SlotTable]')
    table.delete(1)
    expect([view.size, view.get(1)]).toEqual([1, undefined])
  })
})
