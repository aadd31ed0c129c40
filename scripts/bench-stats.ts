/**
 * The summary statistics the benchmarks report, defined once so that every table means the same by "median"
 * and "p99".
 */

/** The middle value, or the mean of the two middle ones for an even count; NaN when there are no values. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * Nearest-rank percentile (0 < p <= 100): the smallest value with at least p% of the values at or below it, so
 * always one that was measured; NaN when there are no values.
 */
export function percentile(values: readonly number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
