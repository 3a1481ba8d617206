/**
 * `runExperiment(config, opts)`: the library form of `mor experiment`. Plans the runs (plan.ts),
 * measures the base model once, runs every planned fine-tuning run that has no cached result,
 * and rewrites the report after each run, so an interrupted experiment leaves a valid partial
 * report and a rerun continues where it stopped.
 *
 * ```
 * <outDir>/runs/base-<hash>/result.json   the base model's accuracy and latency
 * <outDir>/runs/<run id>/result.json      one finished run (its presence = done)
 * <outDir>/runs/<run id>/metrics.jsonl    its training log
 * <outDir>/results.json                   everything, aggregated
 * <outDir>/report.md, *.svg               the report (report.ts)
 * ```
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { initBackend } from '../backend/tf.ts';
import { readMultipleChoice } from '../eval/multipleChoice.ts';
import { readDataRecords } from '../data/mix.ts';
import { checkOutputDir } from '../io/outputPath.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { loadConfig } from '../models/load.ts';
import { UserError } from '../errors.ts';
import type { ExperimentConfig } from './config.ts';
import { fineTune, measureBase, type FineTuneResult } from './fineTune.ts';
import { latencyItems, measureLatency, selectItems, type AccuracyResult } from './measure.ts';
import { getPeftModel } from '../adapters/inject.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { loadModel } from '../models/load.ts';
import type { MultipleChoiceItem } from '../data/formats.ts';
import { planRuns, runHash, type RunSpec } from './plan.ts';
import { writeExperimentReport } from './report.ts';

/** The base model's cached measurements. */
export interface BaseResult {
  accuracy: AccuracyResult;
  latencyMsPerToken?: number;
  baseParams: number;
}

/** A finished run: its plan and its measurements. */
export interface RunRecord {
  spec: RunSpec;
  result: FineTuneResult;
}

/** Options of {@link runExperiment}. */
export interface RunExperimentOptions {
  /** Output folder. Default `reports/<name>`. */
  outDir?: string;
  /** Replace the main comparison's seeds (ablations then use the first). */
  seeds?: number[];
  /** Stop starting new runs after this many minutes (the report covers what finished). */
  timeBudgetMinutes?: number;
  /** Run at most this many (uncached) runs. */
  maxRuns?: number;
  /** Only the main comparison (no ablations). */
  mainOnly?: boolean;
  /**
   * After the runs, re-measure the generation latency of the base model and of every main
   * method's adapter (freshly initialised: the cost does not depend on the weights) back to back
   * in this process, median of 3 rounds, into `<outDir>/latency.json` (the report prefers it).
   */
  latencyPass?: boolean;
  /** The command line shown in the report. */
  command?: string;
  /** Progress lines. Default: stderr. */
  log?: (line: string) => void;
}

/** What {@link runExperiment} returns. */
export interface RunExperimentResult {
  outDir: string;
  planned: RunSpec[];
  done: RunRecord[];
  base: BaseResult;
  reportFile: string;
  resultsFile: string;
  /** Runs executed by this call (not from the cache). */
  executed: number;
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Content hash of the model directory's weights/config/tokenizer and the data files. */
function fingerprintOf(c: ExperimentConfig): string {
  const modelFiles = ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => path.join(c.model, f)).filter((f) => fs.existsSync(f));
  return runHash({
    model: modelFiles.map(sha256File),
    train: sha256File(c.trainData),
    eval: sha256File(c.evalData),
    tasks: c.tasks ?? null,
    evalLimitPerTask: c.evalLimitPerTask ?? null,
    evalMaxLength: c.evalMaxLength,
    latency: c.latency,
  });
}

function readJson<T>(file: string): T | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined; // a torn file (should not happen: writes are atomic) counts as not done
  }
}

/** A one-line machine description for the report. */
export function machineDescription(): string {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.arch()}`;
}

/** Write the training records of the configured tasks to `file` (all records when no filter). */
async function filteredTrainData(c: ExperimentConfig, outDir: string): Promise<string> {
  if (!c.tasks) return c.trainData;
  const wanted = new Set(c.tasks);
  const records = (await readDataRecords(c.trainData)).filter((r) => wanted.has(r.task));
  if (records.length === 0) throw new UserError(`${c.trainData}: no training record of the tasks ${c.tasks.join(', ')}`);
  const file = path.join(outDir, 'data', 'train.jsonl');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomicSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/** Run (or resume) the experiment; see the module comment. */
export async function runExperiment(c: ExperimentConfig, opts: RunExperimentOptions = {}): Promise<RunExperimentResult> {
  await initBackend();
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const outDir = opts.outDir ?? path.join('reports', c.name);
  checkOutputDir(outDir, '--out');
  const runsDir = path.join(outDir, 'runs');
  fs.mkdirSync(runsDir, { recursive: true });
  const t0 = performance.now();

  const modelConfig = loadConfig(c.model);
  const fingerprint = fingerprintOf(c);
  const weights = path.join(c.model, 'model.safetensors');
  const modelHash = fs.existsSync(weights) ? sha256File(weights).slice(0, 16) : undefined;
  const planned = planRuns(c, modelConfig, fingerprint, { seeds: opts.seeds });
  const trainData = await filteredTrainData(c, outDir);
  const evalItems = selectItems(await readMultipleChoice([c.evalData]), { tasks: c.tasks, limitPerTask: c.evalLimitPerTask });
  if (evalItems.length === 0) throw new UserError(`${c.evalData}: no evaluation item of the selected tasks`);

  const common = { evalItems, evalBatchSize: c.evalBatchSize, evalMaxLength: c.evalMaxLength, latency: c.latency };
  const baseFile = path.join(runsDir, `base-${runHash({ fingerprint })}`, 'result.json');
  let base = readJson<BaseResult>(baseFile);
  if (!base) {
    log(`[base] evaluating ${c.model} on ${evalItems.length} items`);
    base = await measureBase({ model: c.model, ...common });
    fs.mkdirSync(path.dirname(baseFile), { recursive: true });
    writeFileAtomicSync(baseFile, JSON.stringify(base, null, 2) + '\n');
    log(`[base] average accuracy ${(100 * base.accuracy.average).toFixed(2)}%`);
  }

  const done: RunRecord[] = [];
  const pending: RunSpec[] = [];
  for (const spec of planned) {
    const r = readJson<FineTuneResult>(path.join(runsDir, spec.id, 'result.json'));
    if (r && (!spec.staticRouting || r.staticRouting)) done.push({ spec, result: r });
    else pending.push(spec);
  }
  log(`${planned.length} runs planned, ${done.length} cached, ${pending.length} to run`);
  const report = async (): Promise<{ reportFile: string; resultsFile: string }> =>
    writeExperimentReport({
      config: c,
      outDir,
      planned,
      done,
      base: base!,
      command: opts.command ?? `mor experiment --config <file> --out ${outDir}`,
      machine: machineDescription(),
      modelHash,
    });
  let files = await report();

  let executed = 0;
  for (const spec of pending) {
    const elapsedMin = (performance.now() - t0) / 60000;
    if (opts.timeBudgetMinutes !== undefined && elapsedMin >= opts.timeBudgetMinutes) {
      log(`time budget of ${opts.timeBudgetMinutes} min reached: stopping; rerun the same command to continue`);
      break;
    }
    if (opts.maxRuns !== undefined && executed >= opts.maxRuns) break;
    if (opts.mainOnly && !spec.memberships.some((m) => m.group === 'main')) continue;
    const k = done.length + 1;
    const tag = `[${k}/${planned.length}] ${spec.memberships.map((m) => `${m.group}:${m.label}`).join(', ')} seed ${spec.seed}`;
    log(`${tag}: ${spec.adapter.kind}, ${spec.train.steps} steps`);
    const runDir = path.join(runsDir, spec.id);
    const every = Math.max(1, Math.round(spec.train.steps / 5));
    const result = await fineTune({
      model: c.model,
      adapter: spec.adapter,
      trainData,
      train: spec.train,
      seed: spec.seed,
      ...common,
      staticRouting: spec.staticRouting,
      routingExamplesPerTask: c.staticRouting?.examplesPerTask ?? 32,
      outDir: runDir,
      routingPlot: false, // the report draws one heatmap; routing.json keeps every run's numbers
      onStep: (rec, total) => {
        if (rec.step % every === 0 || rec.step === total) {
          log(`${tag}: step ${rec.step}/${total} loss ${rec.loss.toFixed(4)} (${(rec.elapsedSec / rec.step).toFixed(2)} s/step)`);
        }
      },
      log: (l) => log(`${tag}: ${l}`),
    });
    writeFileAtomicSync(path.join(runDir, 'result.json'), JSON.stringify(result, null, 2) + '\n');
    done.push({ spec, result });
    executed++;
    log(`${tag}: done in ${result.wallSeconds.toFixed(0)} s, average accuracy ${(100 * result.after.average).toFixed(2)}%`);
    files = await report();
  }
  if (opts.latencyPass) {
    log('latency pass: base model and every main method, 3 rounds');
    const methods = new Map<string, RunSpec['adapter']>();
    for (const p of planned) for (const m of p.memberships) if (m.group === 'main' && !methods.has(m.label)) methods.set(m.label, p.adapter);
    const lat = await latencyPass(c.model, methods, evalItems, c.latency);
    writeFileAtomicSync(path.join(outDir, 'latency.json'), JSON.stringify({ ...lat, machine: machineDescription() }, null, 2) + '\n');
    files = await report();
  }
  return { outDir, planned, done, base, ...files, executed };
}

/** Latency of the base model and of each adapter config, median over `rounds` interleaved rounds. */
async function latencyPass(
  modelDir: string,
  adapters: Map<string, RunSpec['adapter']>,
  items: MultipleChoiceItem[],
  latency: { newTokens: number; prompts: number },
  rounds = 3,
): Promise<{ rounds: number; baseMsPerToken: number; msPerToken: Record<string, number> }> {
  const tok = Tokenizer.fromDir(modelDir);
  let model = await loadModel(modelDir);
  const prompts = latencyItems(items, latency.prompts);
  const samples = new Map<string, number[]>([['base', []], ...[...adapters.keys()].map((k) => [k, []] as [string, number[]])]);
  try {
    for (let r = 0; r < rounds; r++) {
      samples.get('base')!.push(await measureLatency(model, tok, prompts, latency));
      for (const [label, adapter] of adapters) {
        const peft = getPeftModel(model, adapter);
        try {
          samples.get(label)!.push(await measureLatency(peft.model, tok, prompts, latency));
        } finally {
          model = peft.unload();
        }
      }
    }
  } finally {
    model.dispose();
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const msPerToken: Record<string, number> = {};
  for (const label of adapters.keys()) msPerToken[label] = median(samples.get(label)!);
  return { rounds, baseMsPerToken: median(samples.get('base')!), msPerToken };
}
