/**
 * The experiment report: `report.md` (the comparison table with mean ± std over seeds,
 * parameter budgets checked against the docs/mor.md formulas, the ablations, the static-routing
 * merge, the status of planned runs; with the protocol sections of reportProtocol.ts: the
 * learning-rate grid, paired confidence intervals, held-out tasks, duration), `results.json`
 * (every number), and two SVG plots (average accuracy vs trainable parameters; MoR's mean
 * routing weight per task and layer, from a main run at its chosen rate).
 * A hand-written `<outDir>/NOTES.md` (how and where the runs were executed, caveats) is
 * included verbatim under "Notes on this run".
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { renderVegaLiteSvg } from '../plot/render.ts';
import { routingHeatmapSvg, type RoutingCell } from '../routing/heatmap.ts';
import type { AdapterConfig } from '../adapters/config.ts';
import { adapterKind } from '../adapters/registry.ts';
import { formulaText } from './budget.ts';
import type { ExperimentConfig } from './config.ts';
import type { RunGroup, RunSpec } from './plan.ts';
import type { BaseResult, RunRecord } from './runner.ts';
import { formatInt, formatNum, formatPercentMeanStd, markdownTable, mean } from './stats.ts';
import { pushAll } from '../util/array.ts';
import type { CallSpan } from './calls.ts';
import type { RateChoice } from './lrSelection.ts';
import { durationText, formatLr, heldOutTables, intervalRows, intervalTable, rateTable } from './reportProtocol.ts';

/** Inputs of {@link writeExperimentReport}. */
export interface ReportInput {
  config: ExperimentConfig;
  outDir: string;
  planned: RunSpec[];
  done: RunRecord[];
  base: BaseResult;
  command: string;
  machine: string;
  /** First hex digits of the sha256 of the model weights (which model the numbers are for). */
  modelHash?: string;
  /** The learning-rate grids and their choices (lrSelection.ts). */
  rateChoices?: RateChoice[];
  /** Settings whose rate is not chosen yet (their comparison runs are not planned). */
  waiting?: string[];
  /** Task of each test item, in scoring order (the paired bootstrap's strata). */
  testItemTasks?: string[];
  /** The `mor experiment` calls on this folder (calls.ts). */
  calls?: CallSpan[];
}

/** One row of a table: the runs (seeds) of one label in one group. */
export interface RowSummary {
  group: RunGroup;
  label: string;
  method: string;
  adapter: AdapterConfig;
  seeds: number[];
  /** Learning rate of the row's runs. */
  lr: number;
  /** Per task: accuracies over seeds. */
  tasks: Record<string, number[]>;
  average: number[];
  trainableParams: number;
  formulaParams: number;
  trainablePercent: number;
  secPerStep: number;
  latencyMsPerToken: number;
  budgetNote?: string;
}

/** Group finished runs into table rows (planned order). */
export function summarizeRows(planned: RunSpec[], done: RunRecord[], group: RunGroup): RowSummary[] {
  const byId = new Map(done.map((d) => [d.spec.id, d]));
  const rows = new Map<string, RowSummary>();
  for (const spec of planned) {
    for (const m of spec.memberships) {
      if (m.group !== group) continue;
      let row = rows.get(m.label);
      if (!row) {
        row = {
          group, label: m.label, method: spec.method, adapter: spec.adapter, seeds: [], lr: spec.train.lr, tasks: {}, average: [],
          trainableParams: Number.NaN, formulaParams: Number.NaN, trainablePercent: Number.NaN,
          secPerStep: Number.NaN, latencyMsPerToken: Number.NaN, budgetNote: spec.budgetNote,
        };
        rows.set(m.label, row);
      }
      const d = byId.get(spec.id);
      if (!d) continue;
      row.seeds.push(spec.seed);
      for (const [t, v] of Object.entries(d.result.after.tasks)) (row.tasks[t] ??= []).push(v);
      row.average.push(d.result.after.average);
      row.trainableParams = d.result.trainableParams;
      row.formulaParams = d.result.formulaParams;
      row.trainablePercent = d.result.trainablePercent;
    }
  }
  // Time and latency: means over the finished seeds.
  for (const row of rows.values()) {
    const runs = done.filter((d) => d.spec.memberships.some((m) => m.group === group && m.label === row.label));
    row.secPerStep = mean(runs.map((d) => d.result.secPerStep));
    row.latencyMsPerToken = mean(runs.map((d) => d.result.latencyMsPerToken ?? Number.NaN).filter(Number.isFinite));
  }
  return [...rows.values()];
}

/** A short description of an adapter config for table cells. */
export function describeAdapter(a: AdapterConfig): string {
  const t = a.targetModules === undefined ? '' : ` on ${Array.isArray(a.targetModules) ? a.targetModules.join('/') : a.targetModules}`;
  return `${adapterKind(a.kind).describe(a)}${t}`;
}

function taskNames(input: ReportInput): string[] {
  return Object.keys(input.base.accuracy.tasks).sort();
}

/** `<outDir>/latency.json` written by the runner's latency pass, if any. */
interface LatencyPass {
  rounds: number;
  baseMsPerToken: number;
  msPerToken: Record<string, number>;
}

function readLatencyPass(outDir: string): LatencyPass | undefined {
  const f = path.join(outDir, 'latency.json');
  if (!fs.existsSync(f)) return undefined;
  try {
    return JSON.parse(fs.readFileSync(f, 'utf8')) as LatencyPass;
  } catch {
    return undefined;
  }
}

function mainTable(input: ReportInput, rows: RowSummary[]): string {
  const lat = readLatencyPass(input.outDir);
  const tasks = taskNames(input);
  const header = ['method', 'trainable params', '% of model', 'seeds', 'lr', ...tasks, 'average', 's/step', 'ms/token'];
  const b = input.base;
  const out: string[][] = [[
    'base (no fine-tuning)', '0', '0', '-', '-',
    ...tasks.map((t) => formatPercentMeanStd([b.accuracy.tasks[t]])), formatPercentMeanStd([b.accuracy.average]), '-',
    formatNum(lat ? lat.baseMsPerToken : b.latencyMsPerToken),
  ]];
  for (const r of rows) {
    out.push([
      r.label, formatInt(r.trainableParams), formatNum(r.trainablePercent, 3), r.seeds.length ? r.seeds.join(',') : 'not run', formatLr(r.lr),
      ...tasks.map((t) => formatPercentMeanStd(r.tasks[t] ?? [])), `**${formatPercentMeanStd(r.average)}**`,
      formatNum(r.secPerStep), formatNum(lat?.msPerToken[r.label] ?? r.latencyMsPerToken),
    ]);
  }
  return markdownTable(header, out);
}

function budgetTable(rows: RowSummary[]): string {
  const header = ['method', 'adapter', 'formula per layer (docs/mor.md)', 'formula total', 'countParameters()', 'equal'];
  return markdownTable(header, rows.map((r) => [
    r.label, describeAdapter(r.adapter), formulaText(r.adapter), formatInt(r.formulaParams), formatInt(r.trainableParams),
    Number.isNaN(r.trainableParams) ? 'not run' : r.formulaParams === r.trainableParams ? 'yes' : '**NO**',
  ]));
}

function ablationTable(rows: RowSummary[], what: string): string {
  const header = [what, 'adapter', 'trainable params', 'seeds', 'lr', 'average accuracy (%)', 's/step'];
  return markdownTable(header, rows.map((r) => [
    r.label, describeAdapter(r.adapter), formatInt(r.trainableParams), r.seeds.length ? r.seeds.join(',') : 'not run', formatLr(r.lr),
    formatPercentMeanStd(r.average), formatNum(r.secPerStep),
  ]));
}

function staticTable(run: RunRecord): string {
  const s = run.result.staticRouting ?? {};
  const header = ['task', 'dynamic routing acc (%)', 'static merged acc (%)', 'delta (points)', 'ms/token merged (this task\'s prompts)'];
  const rows = Object.keys(s).sort().map((t) => [
    t, formatNum(100 * s[t].dynamicAccuracy), formatNum(100 * s[t].accuracy), formatNum(100 * (s[t].accuracy - s[t].dynamicAccuracy)), formatNum(s[t].latencyMsPerToken),
  ]);
  const accs = Object.values(s);
  const dyn = mean(accs.map((a) => a.dynamicAccuracy));
  const stat = mean(accs.map((a) => a.accuracy));
  rows.push(['**average**', formatNum(100 * dyn), formatNum(100 * stat), formatNum(100 * (stat - dyn)), formatNum(mean(accs.map((a) => a.latencyMsPerToken ?? Number.NaN).filter(Number.isFinite)))]);
  return markdownTable(header, rows);
}

/** Vega-Lite spec: average accuracy vs trainable parameters (log x), one point per row. */
export function accuracyVsParamsSpec(points: { label: string; group: string; params: number; accuracy: number }[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Average 0-shot accuracy vs trainable parameters',
    width: 560,
    height: 340,
    background: 'white',
    data: { values: points },
    layer: [
      {
        mark: { type: 'point', filled: true, size: 90 },
        encoding: {
          x: { field: 'params', type: 'quantitative', title: 'trainable parameters (log scale)', scale: { type: 'log' } },
          y: { field: 'accuracy', type: 'quantitative', title: 'average accuracy (%)', scale: { zero: false } },
          color: { field: 'group', type: 'nominal', title: 'table' },
          shape: { field: 'group', type: 'nominal' },
        },
      },
      {
        mark: { type: 'text', dx: 6, align: 'left', fontSize: 10 },
        encoding: {
          x: { field: 'params', type: 'quantitative', scale: { type: 'log' } },
          y: { field: 'accuracy', type: 'quantitative' },
          text: { field: 'label' },
        },
      },
    ],
  } as TopLevelSpec;
}

/** The registry label of the kind of method `name` (`MoR`); `name` itself when no method has it. */
function kindLabelOf(c: ExperimentConfig, name: string | undefined): string {
  const m = c.methods.find((x) => x.name === name);
  return m ? adapterKind(m.adapter.kind).label : (name ?? '');
}

/** Heatmap cells from a run's routing (task -> module path -> mean weights). */
export function routingCells(routing: Record<string, Record<string, number[]>>): RoutingCell[] {
  const cells: RoutingCell[] = [];
  for (const [task, byPath] of Object.entries(routing)) {
    for (const [p, w] of Object.entries(byPath)) {
      const layer = p.replace(/^base_model\.model\./, '').replace(/^model\./, '');
      w.forEach((weight, expert) => cells.push({ layer, task, expert, weight }));
    }
  }
  return cells;
}

/** Write report.md, results.json and the plots; returns the report and results paths. */
export async function writeExperimentReport(input: ReportInput): Promise<{ reportFile: string; resultsFile: string }> {
  const { config: c, outDir, planned, done } = input;
  fs.mkdirSync(outDir, { recursive: true });
  const main = summarizeRows(planned, done, 'main');
  const ablations = (['experts', 'ranks', 'routers'] as const).map((g) => ({ group: g, rows: summarizeRows(planned, done, g) }));
  const staticRun = done.find((d) => d.spec.staticRouting && d.result.staticRouting) ?? done.find((d) => d.result.staticRouting && Object.keys(d.result.staticRouting).length > 0);
  // The routing heatmap: the static-routing run, else a main run of the method the config
  // studies (its static routing or ablations), else any main run that routes.
  const routedMain = (d: RunRecord): boolean =>
    adapterKind(d.spec.adapter.kind).routes(d.spec.adapter) && d.result.routing !== undefined && d.spec.memberships.some((m) => m.group === 'main');
  const studied = c.staticRouting?.of ?? c.ablations?.of;
  const routingRun = staticRun ?? done.find((d) => d.spec.method === studied && routedMain(d)) ?? done.find(routedMain);
  const ablatedLabel = kindLabelOf(c, c.ablations?.of);

  const points = [
    ...main.filter((r) => r.average.length).map((r) => ({ label: r.label, group: 'main', params: r.trainableParams, accuracy: 100 * mean(r.average) })),
    ...ablations.flatMap((a) => a.rows.filter((r) => r.average.length).map((r) => ({ label: `${ablatedLabel} ${r.label}`, group: `ablation: ${a.group}`, params: r.trainableParams, accuracy: 100 * mean(r.average) }))),
  ];
  const plots: string[] = [];
  if (points.length > 0) {
    writeFileAtomicSync(path.join(outDir, 'accuracy_vs_params.svg'), await renderVegaLiteSvg(accuracyVsParamsSpec(points)));
    plots.push('accuracy_vs_params.svg');
  }
  if (routingRun?.result.routing) {
    const title = `${adapterKind(routingRun.spec.adapter.kind).label} (${describeAdapter(routingRun.spec.adapter)}, lr ${formatLr(routingRun.spec.train.lr)}, seed ${routingRun.spec.seed}): mean routing weight per expert, by task and layer`;
    writeFileAtomicSync(path.join(outDir, 'routing_heatmap.svg'), await routingHeatmapSvg(routingCells(routingRun.result.routing), { title }));
    plots.push('routing_heatmap.svg');
  }

  const doneIds = new Set(done.map((d) => d.spec.id));
  const choices = input.rateChoices ?? [];
  const waiting = input.waiting ?? [];
  const missing = planned.filter((p) => !doneIds.has(p.id));
  const tasks = taskNames(input);
  const anyRun = done[0]?.result;
  const L: string[] = [];
  L.push(`# Experiment \`${c.name}\`: full fine-tuning, LoRA, DoRA, MoELoRA and MoR on the task suite`, '');
  if (c.description) L.push(c.description.trim(), '');
  L.push(
    `- **Command:** \`${input.command}\``,
    `- **Machine:** ${input.machine}`,
    `- **Model:** \`${c.model}\` (${formatInt(input.base.baseParams)} parameters${input.modelHash ? `; model.safetensors sha256 ${input.modelHash}...` : ''})`,
    `- **Training data:** \`${c.trainData}\`${c.tasks ? ` (tasks: ${c.tasks.join(', ')})` : ''}; ${c.train.steps} steps (unless a method overrides), batch ${c.train.batchSize}, max length ${c.train.maxLength}, ${choices.length ? 'lr chosen per setting (below)' : `lr ${c.train.lr}`} (${c.train.schedule}, warmup ${c.train.warmup}), AdamW, grad clip ${c.train.maxGradNorm}`,
    `- **Evaluation:** 0-shot multiple choice on \`${c.evalData}\`${c.evalLimitPerTask ? ` (first ${c.evalLimitPerTask} items per task)` : ''}: ${Object.values(input.base.accuracy.n).reduce((a, b) => a + b, 0)} items, ${tasks.length} tasks; accuracy = argmax of the summed log-likelihood of each choice given the chat-formatted question (lm-eval-harness \`acc\`); the average is the unweighted mean over tasks.`,
    `- **Seeds:** main comparison ${[...new Set(planned.filter((p) => p.memberships.some((m) => m.group === 'main')).map((p) => p.seed))].join(', ')}; cells are mean ± sample std over the finished seeds (one value: no ±).`,
    `- **Timing:** s/step = wall seconds per optimizer update on this machine; ms/token = greedy generation, batch 1, KV cache, ${c.latency.newTokens} tokens after each of ${c.latency.prompts} eval prompts (median over prompts), prefill included${readLatencyPass(outDir) ? `; in the main table measured back to back in one process after the runs (base model and each method's adapter, median of ${readLatencyPass(outDir)!.rounds} interleaved rounds)` : ', measured at the end of each run'}.`,
    `- **Duration:** ${durationText(done, input.calls ?? [])}.`,
    `- **Status:** ${done.length} of ${planned.length} planned runs finished${waiting.length ? `; ${waiting.length} settings wait for their learning-rate choice before their runs are planned (${waiting.join(', ')})` : ''}${missing.length ? `; not run yet: ${missing.map((m) => `${m.memberships.map((x) => `${x.group}:${x.label}`).join('/')} seed ${m.seed}`).join(', ')}. Rerun the same command to continue: finished runs are cached in \`runs/\` and skipped` : ''}.`,
    '',
  );
  const notesFile = path.join(outDir, 'NOTES.md');
  if (fs.existsSync(notesFile)) L.push('## Notes on this run', '', fs.readFileSync(notesFile, 'utf8').trim(), '');
  if (choices.length) {
    L.push(
      '## Learning-rate selection', '',
      `Each setting is trained once per rate of its grid at seed ${c.selectSeed} and scored on the validation split \`${c.selectData}\` (average accuracy %, same tasks and item limit as the test split); the best rate is chosen (ties: the smaller rate) and every run below trains at it and is scored on the test split. Held-out runs use their method's main rate.`,
      '',
      rateTable(choices),
    );
  }
  L.push('## Main comparison (accuracy %, per task and average)', '', mainTable(input, main));
  const intervals = input.testItemTasks ? intervalRows(c, done, input.testItemTasks) : [];
  if (intervals.length) {
    L.push(
      `## Paired differences: ${intervals[0].of} minus each method`, '',
      `Difference of average test accuracy (points; the mean over the paired seeds of the unweighted task average), with a ${Math.round(100 * c.intervals.level)} % percentile interval from ${c.intervals.resamples} paired bootstrap replicates (seeds and, within each task, test items drawn with replacement, the same draws for both methods; resampling seed ${c.intervals.seed}, so the interval is reproducible). **better** / **worse**: the interval excludes 0; otherwise **not distinguishable**.`,
      '',
      intervalTable(intervals, c.intervals.level),
    );
  }
  L.push(
    '## Trainable-parameter budgets', '',
    'Every count below is computed twice: from the formulas of `docs/mor.md` (`src/experiment/budget.ts`, from the model config alone) and by `countParameters()` on the model with the adapter injected; a run fails if they differ. "% of model" is relative to the base model\'s parameters.',
    '',
    budgetTable(main),
  );
  const notes = main.filter((r) => r.budgetNote).map((r) => `- **${r.label}**: rank chosen for the closest budget: ${r.budgetNote}.`);
  if (notes.length) pushAll(L, ['How budgets were matched:', '', ...notes, '']);
  for (const a of ablations) {
    if (a.rows.length === 0) continue;
    const title = { experts: 'Number of experts N', ranks: 'Rank r', routers: 'Router: learned softmax vs uniform mean vs softmax + load-balance loss' }[a.group];
    L.push(`## Ablation (${ablatedLabel}): ${title}`, '', ablationTable(a.rows, a.group === 'experts' ? 'N' : a.group === 'ranks' ? 'r' : 'router'));
  }
  if (c.heldOut) {
    L.push(
      '## Held-out tasks (zero-shot transfer)', '',
      `Each group in turn is left out of training: every method trains on the other tasks (same steps, budgets and rate as in the main comparison, seeds ${(c.heldOut.seeds ?? [c.seeds[0]]).join(', ')}) and is scored on the group's test items${choices.length ? ' (the rate was chosen on the validation items of every task, the held-out ones included: a choice of one number, no training on them)' : ''}; cells are the group's average accuracy (%), mean ± std over seeds.`,
      '',
      heldOutTables(c, done, input.base),
    );
  }
  const staticRuns = done.filter((d) => d.result.staticRouting && Object.keys(d.result.staticRouting).length > 0).sort((a, b) => a.spec.seed - b.spec.seed);
  if (staticRuns.length > 0) {
    const lat = readLatencyPass(outDir);
    const morLabel = c.staticRouting?.of;
    const kindLabel = kindLabelOf(c, morLabel);
    L.push(
      `## ${kindLabel} static-routing merge`, '',
      `For each task, the mean routing vector of every ${kindLabel} layer over ${c.staticRouting?.examplesPerTask ?? 32} of that task's training examples is folded into W (\`mergeWithRouting\`) and that task is re-scored and timed. The merged model is architecturally the base model, so its per-token cost is the base model's` +
        (lat && morLabel && lat.msPerToken[morLabel] !== undefined
          ? `: in the latency pass (same prompts, back to back) ${formatNum(lat.baseMsPerToken)} ms/token merged (= base) vs ${formatNum(lat.msPerToken[morLabel])} ms/token with dynamic routing.`
          : '.'),
      '',
    );
    for (const run of staticRuns) L.push(`### ${run.spec.method}, seed ${run.spec.seed}`, '', staticTable(run));
  }
  if (plots.length) {
    L.push('## Plots', '');
    for (const p of plots) L.push(`![${p}](${p})`, '');
    if (routingRun) L.push(`The routing heatmap is run \`${routingRun.spec.id}\` of the main comparison (seed ${routingRun.spec.seed}, lr ${formatLr(routingRun.spec.train.lr)}): mean routing weight per expert over ${c.staticRouting?.examplesPerTask ?? 32} training examples of each task, per adapted layer.`, '');
  }
  L.push('## Runs', '', markdownTable(
    ['run id', 'tables', 'adapter', 'seed', 'lr', 'steps', 'first/last loss', 'train s', 'wall s'],
    done.map((d) => [
      d.spec.id, d.spec.memberships.map((m) => `${m.group}:${m.label}`).join(', '), describeAdapter(d.spec.adapter), String(d.spec.seed), formatLr(d.spec.train.lr),
      String(d.result.steps), `${formatNum(d.result.firstLoss, 3)} / ${formatNum(d.result.lastLoss, 3)}`, formatNum(d.result.trainSeconds, 0), formatNum(d.result.wallSeconds, 0),
    ]),
  ));
  if (!anyRun) L.push('No fine-tuning run has finished yet.', '');

  const reportFile = path.join(outDir, 'report.md');
  const resultsFile = path.join(outDir, 'results.json');
  writeFileAtomicSync(reportFile, L.join('\n'));
  const results = {
    name: c.name,
    command: input.command,
    machine: input.machine,
    config: c,
    base: input.base,
    planned: planned.map((p) => ({ id: p.id, memberships: p.memberships, seed: p.seed, done: doneIds.has(p.id) })),
    main: main.map(stripRow),
    ablations: Object.fromEntries(ablations.map((a) => [a.group, a.rows.map(stripRow)])),
    staticRouting: staticRuns.map((r) => ({ run: r.spec.id, seed: r.spec.seed, tasks: r.result.staticRouting })),
    rateChoices: choices,
    intervals,
    routingRun: routingRun?.spec.id,
    calls: input.calls ?? [],
    runs: done.map((d) => ({ spec: d.spec, result: { ...d.result, files: undefined } })),
  };
  writeFileAtomicSync(resultsFile, JSON.stringify(results, null, 1) + '\n');
  return { reportFile, resultsFile };
}

function stripRow(r: RowSummary): Record<string, unknown> {
  return { ...r, meanAverage: mean(r.average) };
}
