/**
 * The report sections of the evaluation protocol (issue 16): the learning-rate grid and the
 * chosen rates, the paired confidence intervals of one method minus each other main method, the
 * held-out-task table, and how long the experiment took. Pure functions of the finished runs;
 * report.ts places them.
 */
import { correctnessOf, pairedBootstrap, type PairedInterval } from './bootstrap.ts';
import { formatDuration, unionMs, type CallSpan } from './calls.ts';
import type { ExperimentConfig } from './config.ts';
import type { RateChoice } from './lrSelection.ts';
import type { BaseResult, RunRecord } from './runner.ts';
import { formatNum, formatPercentMeanStd, markdownTable, mean } from './stats.ts';

/** A learning rate as written in configs (`0.003`, `1e-4`). */
export function formatLr(lr: number): string {
  return String(lr);
}

/** The grid table: one row per setting, one column per rate (validation accuracy %), the choice. */
export function rateTable(choices: readonly RateChoice[]): string {
  const rates = [...new Set(choices.flatMap((c) => c.scores.map((s) => s.lr)))].sort((a, b) => a - b);
  const rows = choices.map((c) => [
    c.key,
    ...rates.map((lr) => {
      const s = c.scores.find((x) => x.lr === lr);
      if (!s) return '';
      const v = s.accuracy === undefined ? 'not run' : formatNum(100 * s.accuracy);
      return lr === c.lr ? `**${v}**` : v;
    }),
    c.lr === undefined ? 'pending' : `**${formatLr(c.lr)}**`,
  ]);
  return markdownTable(['setting', ...rates.map((lr) => `lr ${formatLr(lr)}`), 'chosen'], rows);
}

/** The method whose differences get intervals: `intervals.of`, else the static-routing or ablated method. */
export function intervalReference(c: ExperimentConfig): string | undefined {
  return c.intervals.of ?? c.staticRouting?.of ?? c.ablations?.of;
}

/** One comparison of the intervals table. */
export interface IntervalRow {
  of: string;
  vs: string;
  /** Seeds both methods finished with per-item results. */
  seeds: number[];
  interval?: PairedInterval;
}

/** Main runs of `method` with per-item results of the full test set, by seed. */
function itemScoresBySeed(done: readonly RunRecord[], method: string, items: number): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const d of done) {
    if (!d.spec.memberships.some((m) => m.group === 'main' && m.label === method)) continue;
    const bits = d.result.after.correct;
    if (bits !== undefined && bits.length === items) out.set(d.spec.seed, correctnessOf(bits));
  }
  return out;
}

/** Paired bootstrap intervals of `of` minus every other main method, on their common seeds. */
export function intervalRows(c: ExperimentConfig, done: readonly RunRecord[], testItemTasks: readonly string[]): IntervalRow[] {
  const of = intervalReference(c);
  if (of === undefined) return [];
  const ref = itemScoresBySeed(done, of, testItemTasks.length);
  return c.methods.filter((m) => m.name !== of).map((m) => {
    const other = itemScoresBySeed(done, m.name, testItemTasks.length);
    const seeds = [...ref.keys()].filter((s) => other.has(s)).sort((a, b) => a - b);
    if (seeds.length === 0) return { of, vs: m.name, seeds };
    const interval = pairedBootstrap(
      { tasks: testItemTasks, a: seeds.map((s) => ref.get(s)!), b: seeds.map((s) => other.get(s)!) },
      { resamples: c.intervals.resamples, seed: c.intervals.seed, level: c.intervals.level },
    );
    return { of, vs: m.name, seeds, interval };
  });
}

const signed = (x: number): string => `${x >= 0 ? '+' : ''}${formatNum(100 * x)}`;

/** The intervals table (differences in accuracy points). */
export function intervalTable(rows: readonly IntervalRow[], level: number): string {
  return markdownTable(
    ['comparison', 'paired seeds', 'test items', 'difference (points)', 'bootstrap mean', `${Math.round(100 * level)} % interval`, 'verdict'],
    rows.map((r) => {
      const i = r.interval;
      return [
        `${r.of} − ${r.vs}`, r.seeds.length ? r.seeds.join(',') : 'none', i ? String(i.items) : '-',
        i ? signed(i.mean) : '-', i ? signed(i.bootstrapMean) : '-', i ? `[${signed(i.lo)}, ${signed(i.hi)}]` : '-',
        i ? `**${i.verdict}**` : 'no paired runs with per-item results',
      ];
    }),
  );
}

/** Held-out tables: per left-out group, per method, the mean ± std over seeds of the group's average accuracy. */
export function heldOutTables(c: ExperimentConfig, done: readonly RunRecord[], base: BaseResult): string {
  const h = c.heldOut;
  if (!h) return '';
  const methods = h.methods ?? c.methods.map((m) => m.name);
  const groups = Object.entries(h.groups);
  const avg = (tasks: Record<string, number>, names: string[]): number => mean(names.map((t) => tasks[t]).filter((v) => v !== undefined));
  const baseCell = (tasks: string[]): string => formatPercentMeanStd([avg(base.accuracy.tasks, tasks)].filter(Number.isFinite));
  const held = groups.map(([g, tasks]) => [
    g, tasks.join(', '), baseCell(tasks),
    ...methods.map((m) => formatPercentMeanStd(done.filter((d) => d.spec.heldOut?.group === g && d.spec.method === m).map((d) => d.result.after.average))),
  ]);
  // The same tasks when they were trained on: the main comparison's runs.
  const seen = groups.map(([g, tasks]) => [
    g, tasks.join(', '), baseCell(tasks),
    ...methods.map((m) => formatPercentMeanStd(done.filter((d) => d.spec.memberships.some((x) => x.group === 'main' && x.label === m)).map((d) => avg(d.result.after.tasks, tasks)))),
  ]);
  const header = ['left-out group', 'tasks', 'base', ...methods];
  return [
    'Zero-shot (the group\'s tasks are not trained on):', '', markdownTable(header, held),
    'For reference, the main comparison\'s runs (trained on every task) on the same tasks:', '', markdownTable(header, seen),
  ].join('\n');
}

/** The duration lines: sum of run wall times, by kind of run, and the wall clock of the calls. */
export function durationText(done: readonly RunRecord[], calls: readonly CallSpan[]): string {
  const kind = (d: RunRecord): string => (d.spec.split === 'validation' ? 'grid' : d.spec.heldOut ? 'held-out' : 'comparison');
  const sum = (xs: readonly RunRecord[]): number => xs.reduce((a, d) => a + d.result.wallSeconds, 0);
  const total = sum(done);
  const parts = ['grid', 'comparison', 'held-out'].map((k) => ({ k, runs: done.filter((d) => kind(d) === k) })).filter((p) => p.runs.length > 0);
  const by = parts.map((p) => `${p.k} ${p.runs.length} runs, ${formatDuration(sum(p.runs))}`).join('; ');
  const wall = calls.length ? `; wall clock ${formatDuration(unionMs(calls) / 1000)} over ${calls.length} call${calls.length === 1 ? '' : 's'} of \`mor experiment\` (union of their time spans)` : '';
  return `${done.length} finished runs, sum of run wall times ${formatDuration(total)}${done.length ? ` (${formatNum(total / done.length, 0)} s/run; ${by})` : ''}${wall}`;
}
