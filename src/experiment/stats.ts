/** Small statistics and formatting helpers of the experiment report. */

/** Mean of `xs` (NaN when empty). */
export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation (n - 1); NaN with fewer than two values. */
export function std(xs: readonly number[]): number {
  if (xs.length < 2) return Number.NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** `61.25 ± 1.10` (percent of fractions), or `61.25` with one value, `-` with none. */
export function formatPercentMeanStd(xs: readonly number[]): string {
  if (xs.length === 0) return '-';
  const m = (100 * mean(xs)).toFixed(2);
  return xs.length < 2 ? m : `${m} ± ${(100 * std(xs)).toFixed(2)}`;
}

/** `1,234,567`. */
export function formatInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-';
}

/** A number with `digits` decimals, `-` when not finite. */
export function formatNum(n: number | undefined, digits = 2): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits);
}

/** A Markdown table (first column left-aligned, the others right-aligned). */
export function markdownTable(header: string[], rows: string[][]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const line = (cells: string[]): string => `| ${cells.map(esc).join(' | ')} |`;
  const sep = `|${header.map((_, i) => (i === 0 ? ':---' : '---:')).join('|')}|`;
  return [line(header), sep, ...rows.map(line)].join('\n') + '\n';
}
