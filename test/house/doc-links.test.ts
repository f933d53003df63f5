// Every relative link of the documents resolves: the file exists, and a #fragment names one of its headings
// (as GitHub makes heading anchors). Documents move and headings change; a reader's click must still land.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const repo = join(import.meta.dirname, '..', '..')

/** README and the other top-level documents, docs/ with its folders (the API reference), the benchmark notes. */
function markdownFiles(): string[] {
  const under = (dir: string): string[] =>
    readdirSync(join(repo, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? under(join(dir, entry.name)) : entry.name.endsWith('.md') ? [join(dir, entry.name)] : [],
    )
  const results = readdirSync(join(repo, 'bench/results')).filter((name) => name.endsWith('.md'))
  return ['README.md', 'CHANGELOG.md', 'SECURITY.md', ...under('docs'), ...results.map((name) => join('bench/results', name))]
}

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens; repeats numbered. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const heading = fenced ? null : /^#{1,6} (.*)$/.exec(line)
    if (heading === null) continue
    const text = heading[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    const base = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/ /g, '-')
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    anchors.add(count === 0 ? base : `${base}-${count}`)
  }
  // Explicit anchors (<a id="...">, <a name="...">) count too.
  for (const match of markdown.matchAll(/<a (?:id|name)="([^"]+)"/g)) anchors.add(match[1]!)
  return anchors
}

/** The document's relative links outside code: [text](target), target without a scheme. */
function relativeLinks(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '')
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1]!).filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target))
}

describe('documents', () => {
  it('link only to files and headings that exist', () => {
    const broken: string[] = []
    for (const file of markdownFiles()) {
      const text = readFileSync(join(repo, file), 'utf8')
      for (const target of relativeLinks(text)) {
        const [path, fragment] = target.split('#', 2) as [string, string | undefined]
        const resolved = path === '' ? join(repo, file) : join(repo, dirname(file), decodeURIComponent(path))
        if (!existsSync(resolved)) {
          broken.push(`${file}: ${target} (no ${relative(repo, resolved)})`)
          continue
        }
        if (fragment === undefined || statSync(resolved).isDirectory() || !resolved.endsWith('.md')) continue
        if (!headingAnchors(readFileSync(resolved, 'utf8')).has(fragment)) broken.push(`${file}: ${target} (no such heading)`)
      }
    }
    expect(broken).toEqual([])
  })

  it('anchor headings as GitHub does', () => {
    expect([...headingAnchors('# Volley\n## Rotating the private key\n## `npm run bench:congestion`\n## Tools\n## Tools\n```\n# not a heading\n```')]).toEqual([
      'volley',
      'rotating-the-private-key',
      'npm-run-benchcongestion',
      'tools',
      'tools-1',
    ])
  })
})
