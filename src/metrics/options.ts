// The exporters' options that both check alike: a name prefix, and constant labels.
import { VolleyTypeError, describe } from '../util/errors.ts'
import { metricFamilies } from './families.ts'

/** The prefix option: '' or a string that `pattern` takes (the start of a metric name); the fallback when absent. */
export function prefixOption(value: unknown, fallback: string, pattern: RegExp, rule: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "prefix" option must be of type string. Received ${describe(value)}`)
  if (value !== '' && !pattern.test(value)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "prefix" option must be '' or what ${rule} (${String(pattern)}). Received '${value}'`)
  }
  return value
}

/** Label names the exporters or the families use themselves. */
const reservedLabels: ReadonlySet<string> = new Set(['le', 'quantile', ...metricFamilies.flatMap((family) => family.labels)])

/** The labels option: names Prometheus takes (none reserved, none a family's own), string values; a copy. */
export function constantLabelsOption(value: unknown): Readonly<Record<string, string>> {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "labels" option must be an object of label names to string values. Received ${describe(value)}`)
  }
  const labels: Record<string, string> = {}
  for (const [name, label] of Object.entries(value)) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) || name.startsWith('__')) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "labels" option has a label name Prometheus refuses: '${name}' (letters, digits and _, not starting with a digit or __)`)
    }
    if (reservedLabels.has(name)) {
      throw new VolleyTypeError('ERR_INVALID_ARG_VALUE', `The "labels" option must not name the label '${name}': a family or the histograms use it (${[...reservedLabels].join(', ')})`)
    }
    if (typeof label !== 'string') throw new VolleyTypeError('ERR_INVALID_ARG_TYPE', `The "labels" option's label '${name}' must be a string. Received ${describe(label)}`)
    labels[name] = label
  }
  return labels
}
