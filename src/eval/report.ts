/**
 * Evaluation reports: per-task metrics, their macro average over tasks, and the two outputs
 * people read — JSON (snake_case metric names, like lm-eval-harness: `acc`, `acc_norm`,
 * `exact_match`) and a Markdown table with an average row.
 */
import path from 'node:path';
import fs from 'node:fs';
import { writeFileAtomic } from '../io/atomic.ts';
import { maxOf } from '../util/array.ts';

/** Metrics of one task. */
export interface TaskMetrics {
  task: string;
  /** Number of items. */
  n: number;
  /** Metric name (`acc`, `acc_norm`, `exact_match`) -> mean over the task's items, in [0, 1]. */
  metrics: Record<string, number>;
}

/** A complete evaluation report. */
export interface EvalReport {
  kind: 'multiple_choice' | 'exact_match';
  /** Metric names, in table order. */
  metricNames: string[];
  /** Per task, sorted by task name. */
  tasks: TaskMetrics[];
  /** Unweighted mean over tasks of each metric (the paper's "average" column). */
  average: Record<string, number>;
  /** Total items. */
  n: number;
}

/**
 * Aggregate per-item metric values (each 0/1 or a score) into a report: mean per task, then
 * the unweighted mean over tasks.
 */
export function aggregate(
  kind: EvalReport['kind'],
  metricNames: string[],
  rows: { task: string; values: Record<string, number> }[],
): EvalReport {
  const byTask = new Map<string, { n: number; sums: Record<string, number> }>();
  for (const r of rows) {
    let t = byTask.get(r.task);
    if (!t) byTask.set(r.task, (t = { n: 0, sums: Object.fromEntries(metricNames.map((m) => [m, 0])) }));
    t.n++;
    for (const m of metricNames) t.sums[m] += r.values[m];
  }
  const tasks: TaskMetrics[] = [...byTask.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([task, t]) => ({ task, n: t.n, metrics: Object.fromEntries(metricNames.map((m) => [m, t.sums[m] / t.n])) }));
  const average = Object.fromEntries(
    metricNames.map((m) => [m, tasks.length ? tasks.reduce((a, t) => a + t.metrics[m], 0) / tasks.length : Number.NaN]),
  );
  return { kind, metricNames, tasks, average, n: rows.length };
}

/** The report as a plain JSON object (what `eval.json` holds). */
export function reportToJson(report: EvalReport, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: report.kind,
    ...extra,
    tasks: Object.fromEntries(report.tasks.map((t) => [t.task, { n: t.n, ...t.metrics }])),
    average: { n_tasks: report.tasks.length, n: report.n, ...report.average },
  };
}

export interface MarkdownOptions {
  /** Show metrics as percentages with 2 decimals (default) or as fractions with 4. */
  percent?: boolean;
  /** Optional heading line above the table. */
  title?: string;
}

/** A Markdown table: `| task | n | acc | acc_norm |`, one row per task, then the average row. */
export function formatMarkdownTable(report: EvalReport, opts: MarkdownOptions = {}): string {
  const percent = opts.percent ?? true;
  const fmt = (v: number): string => (Number.isNaN(v) ? '-' : percent ? (100 * v).toFixed(2) : v.toFixed(4));
  const header = ['task', 'n', ...report.metricNames.map((m) => (percent ? `${m} (%)` : m))];
  const rows = report.tasks.map((t) => [escapeCell(t.task), String(t.n), ...report.metricNames.map((m) => fmt(t.metrics[m]))]);
  rows.push(['**average**', String(report.n), ...report.metricNames.map((m) => fmt(report.average[m]))]);
  const widths = header.map((h, c) => Math.max(h.length, maxOf(rows.map((r) => r[c].length))));
  const line = (cells: string[]): string =>
    '| ' + cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, c) => (c === 0 ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  const out = [line(header), sep, ...rows.map(line)].join('\n') + '\n';
  return opts.title ? `${opts.title}\n\n${out}` : out;
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/**
 * Write `<name>.json` and `<name>.md` into `dir` (created if needed), atomically.
 * @returns the two paths.
 */
export async function writeReport(
  dir: string,
  report: EvalReport,
  opts: { name?: string; extra?: Record<string, unknown>; title?: string } = {},
): Promise<{ json: string; markdown: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const name = opts.name ?? 'eval';
  const json = path.join(dir, `${name}.json`);
  const markdown = path.join(dir, `${name}.md`);
  await writeFileAtomic(json, JSON.stringify(reportToJson(report, opts.extra ?? {}), null, 2) + '\n');
  await writeFileAtomic(markdown, formatMarkdownTable(report, { title: opts.title }));
  return { json, markdown };
}
