// Resource usage of this process over a window.

/** getrusage(RUSAGE_SELF) from start to end: CPU time and context switches of every thread of the process. */
export function usageBetween(start: NodeJS.ResourceUsage, end: NodeJS.ResourceUsage): NodeJS.ResourceUsage {
  const result = { ...end }
  for (const key of Object.keys(end) as (keyof NodeJS.ResourceUsage)[]) {
    if (key !== 'maxRSS') result[key] = end[key] - start[key]
  }
  return result
}
