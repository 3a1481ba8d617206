/**
 * `runDemo(options)`: the README's first command (`mor demo`). Fine-tunes the bundled base
 * model with MoR on the task suite's training mixture, scores 0-shot multiple-choice accuracy
 * per task before and after, prints the table, and writes to the output folder:
 *
 * ```
 * <out>/adapter/                 the MoR adapter (PEFT layout)
 * <out>/metrics.jsonl            training log
 * <out>/loss.svg                 training loss curve
 * <out>/routing.svg, routing.json  mean routing weight per expert, by task and layer
 * <out>/eval_before.json/.md, eval_after.json/.md, eval.md (before/after/delta table)
 * <out>/demo.json                everything measured, with timings
 * ```
 *
 * The defaults fit in 10 minutes on a 2-core machine (see the README).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAdapterConfig, type AdapterConfigInput } from '../adapters/config.ts';
import { adapterKind } from '../adapters/registry.ts';
import { readMultipleChoice } from '../eval/multipleChoice.ts';
import { checkOutputDir } from '../io/outputPath.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { fineTune, type FineTuneResult } from './fineTune.ts';
import { selectItems, type AccuracyResult } from './measure.ts';
import { TrainSettingsSchema, type TrainSettings } from './config.ts';
import { markdownTable } from './stats.ts';

/** Defaults of {@link runDemo} (the README's numbers were measured with these). */
export const DEMO_DEFAULTS = {
  model: 'models/base',
  data: 'data/suite/train.mix.jsonl',
  evalData: 'data/suite/test.mc.jsonl',
  out: 'runs/demo',
  steps: 400,
  seed: 0,
  batchSize: 8,
  maxLength: 128,
  lr: 5e-3,
  evalLimitPerTask: 100,
  adapter: { kind: 'mor', r: 8, alpha: 16, numExperts: 8, targetModules: ['gate_proj', 'up_proj', 'down_proj'] } as AdapterConfigInput,
};

/** Options of {@link runDemo}; every field defaults to {@link DEMO_DEFAULTS}. */
export interface DemoOptions {
  model?: string;
  /** Training JSONL (the suite's mixture). */
  data?: string;
  /** Multiple-choice JSONL scored before and after. */
  evalData?: string;
  /** Items per task scored (the first ones); 0 or undefined after parsing = all. */
  evalLimitPerTask?: number;
  out?: string;
  steps?: number;
  seed?: number;
  batchSize?: number;
  maxLength?: number;
  lr?: number;
  /**
   * Adapter config. Without `kind`, or with the default's kind (MoR), its fields override those
   * of the default MoR adapter (e.g. `{ targetModules: 'all-linear' }`);
   * with another kind it replaces the default.
   */
  adapter?: Partial<AdapterConfigInput>;
  /** Progress and result lines. Default: stderr. */
  log?: (line: string) => void;
}

/** What {@link runDemo} returns. */
export interface DemoResult {
  before: AccuracyResult;
  after: AccuracyResult;
  /** The before/after/delta table (Markdown). */
  table: string;
  result: FineTuneResult;
  outDir: string;
  wallSeconds: number;
}

/** The demo's adapter: `override` merged over the default MoR adapter (see {@link DemoOptions.adapter}). */
export function demoAdapterInput(override?: Partial<AdapterConfigInput>): AdapterConfigInput {
  if (!override) return DEMO_DEFAULTS.adapter;
  if (override.kind === undefined || override.kind === DEMO_DEFAULTS.adapter.kind) return { ...DEMO_DEFAULTS.adapter, ...override } as AdapterConfigInput;
  return override as AdapterConfigInput;
}

/** Display name of an adapter kind in tables ("MoR", "LoRA", ...): its registry label. */
export function adapterLabel(kind: string): string {
  return adapterKind(kind).label;
}

/** Before / after / delta per task, then the average row (percent); `label` names the fine-tuned model. */
export function beforeAfterTable(before: AccuracyResult, after: AccuracyResult, label = 'MoR'): string {
  const tasks = Object.keys(after.tasks).sort();
  const pct = (v: number): string => (100 * v).toFixed(2);
  const delta = (v: number): string => `${v >= 0 ? '+' : ''}${(100 * v).toFixed(2)}`;
  const rows = tasks.map((t) => [t, String(after.n[t]), pct(before.tasks[t]), pct(after.tasks[t]), delta(after.tasks[t] - before.tasks[t])]);
  const n = Object.values(after.n).reduce((a, b) => a + b, 0);
  rows.push(['**average**', String(n), pct(before.average), pct(after.average), delta(after.average - before.average)]);
  return markdownTable(['task', 'n', 'before (%)', `after ${label} (%)`, 'delta (points)'], rows);
}

function accuracyJson(a: AccuracyResult): Record<string, unknown> {
  return {
    kind: 'multiple_choice',
    tasks: Object.fromEntries(Object.keys(a.tasks).sort().map((t) => [t, { n: a.n[t], acc: a.tasks[t], acc_norm: a.tasksNorm[t] }])),
    average: { n_tasks: Object.keys(a.tasks).length, acc: a.average, acc_norm: a.averageNorm },
    seconds: a.seconds,
  };
}

/** Fine-tune with MoR and compare before/after; see the module comment. */
export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const d = DEMO_DEFAULTS;
  const outDir = o.out ?? d.out;
  checkOutputDir(outDir, '--out');
  const train: TrainSettings = TrainSettingsSchema.parse({
    steps: o.steps ?? d.steps,
    batchSize: o.batchSize ?? d.batchSize,
    maxLength: o.maxLength ?? d.maxLength,
    lr: o.lr ?? d.lr,
    warmup: Math.min(20, Math.floor((o.steps ?? d.steps) / 10)),
  });
  const adapter = parseAdapterConfig(demoAdapterInput(o.adapter), 'demo adapter');
  const evalData = o.evalData ?? d.evalData;
  const limit = o.evalLimitPerTask === undefined ? d.evalLimitPerTask : o.evalLimitPerTask || undefined;
  const evalItems = selectItems(await readMultipleChoice([evalData]), { limitPerTask: limit });
  fs.mkdirSync(outDir, { recursive: true });

  let lastEval = 0;
  const result = await fineTune({
    model: o.model ?? d.model,
    adapter,
    trainData: o.data ?? d.data,
    train,
    seed: o.seed ?? d.seed,
    evalItems,
    evalBatchSize: 16,
    evalMaxLength: 256,
    evalBefore: true,
    routingExamplesPerTask: 16,
    outDir,
    saveAdapter: true,
    onStep: (rec, total) => {
      const every = Math.max(1, Math.round(total / 20));
      if (rec.step % every === 0 || rec.step === total || rec.step === 1) {
        const eta = (rec.elapsedSec / rec.step) * (total - rec.step);
        log(`step ${rec.step}/${total} loss ${rec.loss.toFixed(4)} lr ${rec.lr.toExponential(1)} (${(rec.elapsedSec / rec.step).toFixed(2)} s/step, eta ${eta.toFixed(0)} s)`);
      }
    },
    onEvalProgress: (phase, done, total) => {
      const now = performance.now();
      if (now - lastEval < 5000 && done < total) return;
      lastEval = now;
      log(`eval ${phase}: ${done}/${total} choices scored`);
    },
    log,
  });
  const before = result.before!;
  const after = result.after;
  const label = adapterLabel(adapter.kind);
  const table = beforeAfterTable(before, after, label);
  const wallSeconds = (performance.now() - t0) / 1000;

  writeFileAtomicSync(path.join(outDir, 'eval_before.json'), JSON.stringify(accuracyJson(before), null, 2) + '\n');
  writeFileAtomicSync(path.join(outDir, 'eval_after.json'), JSON.stringify(accuracyJson(after), null, 2) + '\n');
  const title = `0-shot multiple-choice accuracy, ${evalData}${limit ? ` (first ${limit} items per task)` : ''}: base model vs ${label} fine-tuned (${train.steps} steps)`;
  writeFileAtomicSync(path.join(outDir, 'eval.md'), `${title}\n\n${table}`);
  writeFileAtomicSync(
    path.join(outDir, 'demo.json'),
    JSON.stringify({ ...result, files: undefined, train, evalData, evalLimitPerTask: limit ?? null, wallSeconds }, null, 1) + '\n',
  );
  return { before, after, table, result, outDir, wallSeconds };
}
