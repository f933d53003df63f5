// Number formats and a markdown table that also reads well in a terminal (columns padded).

export function packetsPerSecond(value: number): string {
  return Number.isFinite(value) ? `${(value / 1000).toFixed(1)} k` : '–'
}

export function rateRange(min: number, max: number): string {
  return Number.isFinite(min) && Number.isFinite(max) ? `${(min / 1000).toFixed(0)}–${(max / 1000).toFixed(0)} k` : '–'
}

export function percent(value: number, digits = 1): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(digits)} %` : '–'
}

export function microseconds(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : '–'
}

export function times(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '–'
}

/** A markdown table; `align` per column: 'l' or 'r'. */
export function table(header: readonly string[], rows: readonly (readonly string[])[], align: string): string {
  const widths = header.map((title, column) => Math.max(title.length, 3, ...rows.map((row) => (row[column] ?? '').length)))
  const cell = (text: string, column: number): string => {
    const width = widths[column] ?? 0
    return align[column] === 'r' ? text.padStart(width) : text.padEnd(width)
  }
  const line = (cells: readonly string[]): string => `| ${cells.map(cell).join(' | ')} |`
  const rule = `|${widths.map((width, column) => (align[column] === 'r' ? `${'-'.repeat(width + 1)}:` : `${'-'.repeat(width + 2)}`)).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}
