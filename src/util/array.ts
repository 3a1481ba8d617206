/**
 * Loops instead of spreading into a call. `Math.max(...xs)`, `out.push(...xs)` and
 * `String.fromCharCode(...xs)` pass every element as an argument on the stack and throw
 * `RangeError: Maximum call stack size exceeded` past roughly 100,000 elements (a checkpoint
 * with 200,000 tensors, a long token list); these helpers take any length.
 */

/** Largest of `xs` (`-Infinity` when empty, as `Math.max()`); NaN if any element is NaN. */
export function maxOf(xs: Iterable<number>): number {
  let m = -Infinity;
  for (const x of xs) {
    if (Number.isNaN(x)) return NaN;
    if (x > m) m = x;
  }
  return m;
}

/** Smallest of `xs` (`Infinity` when empty, as `Math.min()`); NaN if any element is NaN. */
export function minOf(xs: Iterable<number>): number {
  let m = Infinity;
  for (const x of xs) {
    if (Number.isNaN(x)) return NaN;
    if (x < m) m = x;
  }
  return m;
}

/** Append every element of `xs` to `out` (as `out.push(...xs)`); returns `out`. */
export function pushAll<T>(out: T[], xs: Iterable<T>): T[] {
  for (const x of xs) out.push(x);
  return out;
}

