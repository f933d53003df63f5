// The one list of metric families: names Prometheus takes, and docs/metrics.md's table listing each of them.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { lossBuckets, metricFamilies, metricFamily, rttBucketsSeconds } from '../../src/metrics/index.ts'

describe('metricFamilies', () => {
  it('has unique Prometheus names, _total for counters only, help for each, and ascending buckets for distributions', () => {
    const names = metricFamilies.map((family) => family.name)
    expect(new Set(names).size).toBe(names.length)
    for (const family of metricFamilies) {
      expect(family.name, family.name).toMatch(/^[a-z][a-z0-9_]*$/)
      expect(family.name.endsWith('_total'), family.name).toBe(family.type === 'counter')
      expect(family.help.length, family.name).toBeGreaterThan(10)
      expect(family.buckets !== undefined, family.name).toBe(family.type === 'distribution')
      if (family.unit === 'seconds') expect(family.name).toMatch(/_seconds$/)
      if (family.unit === 'bytes') expect(family.name).toMatch(/_bytes(_total)?$/)
      for (const label of family.labels) expect(label).toMatch(/^[a-z_]+$/)
      expect(metricFamily(family.name)).toBe(family)
    }
    for (const bounds of [rttBucketsSeconds, lossBuckets]) expect([...bounds].sort((a, b) => a - b)).toEqual(bounds)
    expect([rttBucketsSeconds[0], rttBucketsSeconds.at(-1), lossBuckets[0], lossBuckets.at(-1)]).toEqual([0.0005, 2, 0, 1])
    expect(metricFamily('no_such_family')).toBeUndefined()
  })

  it('is the table of docs/metrics.md, row for row', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'metrics.md'), 'utf8')
    const table = doc.slice(doc.indexOf('## Families'), doc.indexOf('## Cost'))
    const rows = [...table.matchAll(/^\| `volley_([a-z0-9_]+)` \|([^|]+)\|([^|]*)\|/gm)].map((match) => ({
      name: match[1]!,
      type: match[2]!.trim(),
      labels: match[3]!.trim().replaceAll('`', ''),
    }))
    expect(rows.map((row) => row.name)).toEqual(metricFamilies.map((family) => family.name))
    for (const [index, family] of metricFamilies.entries()) {
      const row = rows[index]!
      const type = family.type === 'distribution' ? 'histogram' : family.type === 'info' ? 'gauge (info)' : family.type
      expect(row.type, family.name).toBe(family.aggregation === 'max' ? `${type}, *max*` : type)
      expect(row.labels, family.name).toBe(family.labels.join(', '))
    }
  })
})
