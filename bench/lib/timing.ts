/**
 * Timing helpers for the benchmarks: repeated synchronous runs with warm-up, reported as
 * median and best wall time, plus GFLOP/s and a plain-text table printer.
 */

import { maxOf } from '../../src/util/array.ts';

export interface Timing {
  /** Median wall time of the timed runs, ms. */
  medianMs: number;
  /** Fastest timed run, ms. */
  minMs: number;
  /** Number of timed runs. */
  iters: number;
}

export interface TimeOptions {
  /** Untimed runs first (JIT, allocator, BLAS thread start-up). Default 1. */
  warmup?: number;
  /** Timed runs at least. Default 3. */
  minIters?: number;
  /** Timed runs at most. Default 50. */
  maxIters?: number;
  /** Stop adding runs (past minIters) once this much time was spent, ms. Default 1500. */
  budgetMs?: number;
}

/** Median of a non-empty list (the mean of the two middle values for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Time a synchronous function (tfjs-wasm and the BLAS kernel compute synchronously). */
export function timeSync(fn: () => void, opts: TimeOptions = {}): Timing {
  const { warmup = 1, minIters = 3, maxIters = 50, budgetMs = 1500 } = opts;
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minIters || (times.length < maxIters && performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)], minMs: times[0], iters: times.length };
}

/** GFLOP/s for `flops` floating-point operations in `ms` milliseconds. */
export function gflops(flops: number, ms: number): number {
  return flops / (ms * 1e6);
}

/** Fixed-width text table: first column left-aligned, the rest right-aligned. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, c) => Math.max(h.length, maxOf(rows.map((r) => (r[c] ?? '').length))));
  const line = (cells: string[]) =>
    cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Number with a fixed number of decimals, or '-' when not measured. */
export function fmt(x: number | undefined, digits = 1): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

/**
 * Time several functions interleaved (f0, f1, ..., f0, f1, ...), so that load from other
 * processes on a shared machine hits all of them alike; ratios of the results are then
 * meaningful even when absolute numbers are noisy.
 */
export function timeInterleaved(fns: (() => void)[], opts: TimeOptions = {}): Timing[] {
  const { warmup = 1, minIters = 3, maxIters = 50, budgetMs = 1500 } = opts;
  for (let i = 0; i < warmup; i++) for (const f of fns) f();
  const times: number[][] = fns.map(() => []);
  const start = performance.now();
  while (times[0].length < minIters || (times[0].length < maxIters && performance.now() - start < budgetMs * fns.length)) {
    fns.forEach((f, j) => {
      const t0 = performance.now();
      f();
      times[j].push(performance.now() - t0);
    });
  }
  return times.map((ts) => {
    ts.sort((a, b) => a - b);
    return { medianMs: ts[Math.floor(ts.length / 2)], minMs: ts[0], iters: ts.length };
  });
}
