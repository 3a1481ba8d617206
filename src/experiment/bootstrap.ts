/**
 * Paired bootstrap confidence interval of the difference in average accuracy between two
 * methods scored on the same test items at the same seeds (MoR minus a baseline in the report).
 *
 * The statistic is the one the report's tables show: per seed, the unweighted mean over tasks
 * of each task's accuracy, for method a minus method b; then the mean over seeds. One bootstrap
 * replicate draws the seeds with replacement and, within every task, that task's items with
 * replacement (stratified, so each task keeps its weight); the SAME drawn seeds and items serve
 * both methods (paired), so item difficulty and seed luck cancel in the difference. The interval
 * is the percentile interval of the replicates; resampling uses a seeded generator, so a report
 * regenerated from the same results gives the same interval.
 */
import { Rng } from '../util/rng.ts';

/** Per-item correctness (1 right, 0 wrong) of two methods, rows = paired seeds, columns = items. */
export interface PairedScores {
  /** Task of each item (column): the per-task means are averaged unweighted. */
  tasks: readonly string[];
  a: readonly (readonly number[])[];
  b: readonly (readonly number[])[];
}

/** Options of {@link pairedBootstrap}. */
export interface BootstrapOptions {
  /** Bootstrap replicates. */
  resamples: number;
  /** Seed of the resampling. */
  seed: number;
  /** Coverage of the interval, e.g. 0.95. */
  level: number;
}

/** Whether a is better, worse or not distinguishable from b: the interval excludes 0 or not. */
export type Verdict = 'better' | 'worse' | 'not distinguishable';

/** What {@link pairedBootstrap} returns (differences as fractions: 0.01 = one point). */
export interface PairedInterval {
  /** The plain paired difference: mean over seeds of (average of a - average of b). */
  mean: number;
  /** Mean of the bootstrap replicates (close to `mean`: a check of the resampling). */
  bootstrapMean: number;
  lo: number;
  hi: number;
  level: number;
  resamples: number;
  seeds: number;
  items: number;
  verdict: Verdict;
}

/** The verdict word of an interval `[lo, hi]`. */
export function verdictOf(lo: number, hi: number): Verdict {
  return lo > 0 ? 'better' : hi < 0 ? 'worse' : 'not distinguishable';
}

/**
 * The `q`-quantile (0..1) of ascending `sorted` by linear interpolation between order statistics
 * (NumPy's default, "type 7").
 */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const h = (sorted.length - 1) * q;
  const i = Math.floor(h);
  return i + 1 < sorted.length ? sorted[i] + (h - i) * (sorted[i + 1] - sorted[i]) : sorted[i];
}

/** Paired, task-stratified bootstrap of a minus b over seeds and items; see the module comment. */
export function pairedBootstrap(s: PairedScores, o: BootstrapOptions): PairedInterval {
  const nSeeds = s.a.length;
  const nItems = s.tasks.length;
  if (nSeeds === 0 || nSeeds !== s.b.length) throw new Error(`pairedBootstrap: ${s.a.length} and ${s.b.length} seeds (need the same, at least one)`);
  for (const row of [...s.a, ...s.b]) if (row.length !== nItems) throw new Error(`pairedBootstrap: a row of ${row.length} items for ${nItems} tasks`);
  // Items by task; each item's weight in the per-seed average is 1 / (tasks * items of its task).
  const byTask = new Map<string, number[]>();
  s.tasks.forEach((t, i) => (byTask.get(t) ?? byTask.set(t, []).get(t)!).push(i));
  const strata = [...byTask.values()];
  const weight = new Float64Array(nItems);
  for (const idx of strata) for (const i of idx) weight[i] = 1 / (strata.length * idx.length);
  const d = s.a.map((row, k) => Float64Array.from(row, (x, i) => (x - s.b[k][i]) * weight[i]));
  const perSeed = d.map((row) => row.reduce((x, y) => x + y, 0));
  const mean = perSeed.reduce((x, y) => x + y, 0) / nSeeds;

  const rng = new Rng(o.seed);
  const counts = new Float64Array(nItems);
  const stats: number[] = [];
  for (let r = 0; r < o.resamples; r++) {
    counts.fill(0);
    for (const idx of strata) for (let j = 0; j < idx.length; j++) counts[idx[rng.int(idx.length)]]++;
    let total = 0;
    for (let j = 0; j < nSeeds; j++) {
      const row = d[rng.int(nSeeds)];
      let sum = 0;
      for (let i = 0; i < nItems; i++) sum += counts[i] * row[i];
      total += sum;
    }
    stats.push(total / nSeeds);
  }
  stats.sort((x, y) => x - y);
  const alpha = 1 - o.level;
  const lo = quantileSorted(stats, alpha / 2);
  const hi = quantileSorted(stats, 1 - alpha / 2);
  return {
    mean, bootstrapMean: stats.reduce((x, y) => x + y, 0) / stats.length, lo, hi, level: o.level,
    resamples: o.resamples, seeds: nSeeds, items: nItems, verdict: verdictOf(lo, hi),
  };
}

/** Parse a run's per-item correctness string (`"0110..."`, see measure.ts) into 0/1 numbers. */
export function correctnessOf(bits: string): number[] {
  return Array.from(bits, (ch) => (ch === '1' ? 1 : 0));
}
