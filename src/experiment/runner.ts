/**
 * `runExperiment(config, opts)`: the library form of `mor experiment`. Plans the runs (plan.ts),
 * measures the base model once, runs every planned fine-tuning run that has no cached result
 * (the learning-rate grid runs first; a setting's comparison runs join the plan once its grid
 * is complete and its rate chosen, lrSelection.ts), and rewrites the report after each run, so
 * an interrupted experiment leaves a valid partial report and a rerun continues where it stopped.
 *
 * ```
 * <outDir>/runs/base-<hash>/result.json   the base model's accuracy and latency
 * <outDir>/runs/<run id>/result.json      one finished run (its presence = done)
 * <outDir>/runs/<run id>/metrics.jsonl    its training log
 * <outDir>/calls/<start>-<pid>.json       each `mor experiment` call's time span (calls.ts)
 * <outDir>/results.json                   everything, aggregated
 * <outDir>/report.md, *.svg               the report (report.ts)
 * ```
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { backendInfo, initBackend } from '../backend/tf.ts';
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
import { planGridRuns, planRuns, runHash, waitingSettings, type RunSpec } from './plan.ts';
import { chooseRates, ratesOf, type RateChoice } from './lrSelection.ts';
import { readCalls, startCall } from './calls.ts';
import { writeExperimentReport } from './report.ts';
import { claimRun, releaseRun } from './runClaims.ts';

/** How often a process whose open runs are all held by other processes looks for their results. */
const CLAIM_POLL_MS = 10_000;

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
  /** Replace the main comparison's seeds (ablations and held-out runs then use the first). */
  seeds?: number[];
  /** Stop starting new runs after this many minutes (the report covers what finished). */
  timeBudgetMinutes?: number;
  /** Run at most this many (uncached) runs. */
  maxRuns?: number;
  /** Only the main comparison and its learning-rate grids (no ablations, no held-out runs). */
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

/**
 * Content hash of the model directory's weights/config/tokenizer and the data files, scored on
 * `evalFile` (the test file; the validation file for the learning-rate grid runs).
 */
function fingerprintOf(c: ExperimentConfig, evalFile: string): string {
  const modelFiles = ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => path.join(c.model, f)).filter((f) => fs.existsSync(f));
  return runHash({
    model: modelFiles.map(sha256File),
    train: sha256File(c.trainData),
    eval: sha256File(evalFile),
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

/** A one-line machine description for the report: CPU model, cores, RAM, compute threads, Node. */
export function machineDescription(): string {
  const cpus = os.cpus();
  const b = backendInfo();
  const threads = b.matmulPath === 'wasm+blas' ? `${b.threads} BLAS thread${b.threads === 1 ? '' : 's'}` : 'pure wasm, 1 thread';
  return `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${threads}, Node ${process.version}, ${os.platform()} ${os.arch()}`;
}

/**
 * Write the training records whose task `keep` accepts to `<outDir>/data/<name>.jsonl` (the
 * configured tasks, or those minus a held-out group); the file itself when no filter applies.
 */
async function filteredTrainData(c: ExperimentConfig, outDir: string, name: string, keep?: (task: string) => boolean): Promise<string> {
  if (!c.tasks && !keep) return c.trainData;
  const wanted = c.tasks ? new Set(c.tasks) : undefined;
  const records = (await readDataRecords(c.trainData)).filter((r) => (!wanted || wanted.has(r.task)) && (!keep || keep(r.task)));
  if (records.length === 0) throw new UserError(`${c.trainData}: no training record for ${name} (tasks ${c.tasks?.join(', ') ?? 'all'})`);
  const file = path.join(outDir, 'data', `${name}.jsonl`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomicSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/**
 * Claim an open run for this process (runClaims.ts); false when another process holds it or
 * finished it since this process last looked.
 */
function claimOpenRun(runsDir: string, id: string): boolean {
  const runDir = path.join(runsDir, id);
  if (!claimRun(runDir)) return false;
  if (!fs.existsSync(path.join(runDir, 'result.json'))) return true;
  releaseRun(runDir);
  return false;
}

/** Whether `--main-only` keeps a run: a main run, or a grid run of a main method. */
function isMainWork(spec: RunSpec): boolean {
  return spec.memberships.some((m) => m.group === 'main' || (m.group === 'grid' && !m.label.includes(':')));
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
  const call = startCall(outDir);

  const modelConfig = loadConfig(c.model);
  const fingerprint = fingerprintOf(c, c.evalData);
  const weights = path.join(c.model, 'model.safetensors');
  const modelHash = fs.existsSync(weights) ? sha256File(weights).slice(0, 16) : undefined;
  const gridRuns = c.selectData ? planGridRuns(c, modelConfig, fingerprintOf(c, c.selectData)) : [];
  const trainData = await filteredTrainData(c, outDir, 'train');
  const evalItems = selectItems(await readMultipleChoice([c.evalData]), { tasks: c.tasks, limitPerTask: c.evalLimitPerTask });
  if (evalItems.length === 0) throw new UserError(`${c.evalData}: no evaluation item of the selected tasks`);
  const selectionItems = c.selectData && gridRuns.length > 0 ? selectItems(await readMultipleChoice([c.selectData]), { tasks: c.tasks, limitPerTask: c.evalLimitPerTask }) : [];
  if (gridRuns.length > 0 && selectionItems.length === 0) throw new UserError(`${c.selectData}: no validation item of the selected tasks`);
  const heldOut = await heldOutInputs(c, outDir, evalItems);

  const common = { evalBatchSize: c.evalBatchSize, evalMaxLength: c.evalMaxLength };
  const baseFile = path.join(runsDir, `base-${runHash({ fingerprint })}`, 'result.json');
  let base = readJson<BaseResult>(baseFile);
  if (!base) {
    log(`[base] evaluating ${c.model} on ${evalItems.length} items`);
    base = await measureBase({ model: c.model, evalItems, ...common, latency: c.latency });
    fs.mkdirSync(path.dirname(baseFile), { recursive: true });
    writeFileAtomicSync(baseFile, JSON.stringify(base, null, 2) + '\n');
    log(`[base] average accuracy ${(100 * base.accuracy.average).toFixed(2)}%`);
  }

  // Finished runs by id; re-read for every newly planned run (another process may have done it).
  const finished = new Map<string, FineTuneResult>();
  const refresh = (specs: RunSpec[]): void => {
    for (const spec of specs) {
      if (finished.has(spec.id)) continue;
      const r = readJson<FineTuneResult>(path.join(runsDir, spec.id, 'result.json'));
      if (r && (!spec.staticRouting || r.staticRouting)) finished.set(spec.id, r);
    }
  };
  refresh(gridRuns);
  // The plan depends on the chosen rates, which depend on the finished grid runs.
  const plan = (): { planned: RunSpec[]; choices: RateChoice[]; waiting: string[] } => {
    const choices = chooseRates(gridRuns, new Map(gridRuns.filter((g) => finished.has(g.id)).map((g) => [g.id, finished.get(g.id)!.after.average])));
    const rates = ratesOf(choices);
    const planned = [...gridRuns, ...planRuns(c, modelConfig, fingerprint, { seeds: opts.seeds, rates })];
    refresh(planned);
    return { planned, choices, waiting: waitingSettings(c, modelConfig, rates).map((s) => s.key) };
  };
  let state = plan();
  const doneOf = (): RunRecord[] => state.planned.filter((p) => finished.has(p.id)).map((spec) => ({ spec, result: finished.get(spec.id)! }));
  let done = doneOf();
  const waitingNote = (): string => (state.waiting.length ? `; ${state.waiting.length} settings wait for their learning-rate choice (${state.waiting.join(', ')})` : '');
  log(`${state.planned.length} runs planned, ${done.length} cached, ${state.planned.length - done.length} to run${waitingNote()}`);
  const report = async (): Promise<{ reportFile: string; resultsFile: string }> => {
    call.update();
    return writeExperimentReport({
      config: c,
      outDir,
      planned: state.planned,
      done,
      base: base!,
      command: opts.command ?? `mor experiment --config <file> --out ${outDir}`,
      machine: machineDescription(),
      modelHash,
      rateChoices: state.choices,
      waiting: state.waiting,
      testItemTasks: evalItems.map((it) => it.task),
      calls: readCalls(outDir),
    });
  };
  let files = await report();

  let executed = 0;
  let waitingForOthers = false;
  for (;;) {
    const open = state.planned.filter((p) => !finished.has(p.id) && (!opts.mainOnly || isMainWork(p)));
    const elapsedMin = (performance.now() - t0) / 60000;
    if (open.length > 0 && opts.timeBudgetMinutes !== undefined && elapsedMin >= opts.timeBudgetMinutes) {
      log(`time budget of ${opts.timeBudgetMinutes} min reached: stopping; rerun the same command to continue`);
      break;
    }
    if (open.length > 0 && opts.maxRuns !== undefined && executed >= opts.maxRuns) break;
    // Another `mor experiment` process on this folder may hold a run (runClaims.ts): take the
    // first one nobody holds; when every open run is held, wait for the others' results (they
    // may also unlock runs that wait for a learning-rate choice).
    const spec = open.find((p) => claimOpenRun(runsDir, p.id));
    if (!spec) {
      if (open.length === 0) break;
      if (!waitingForOthers) log(`waiting for ${open.length} run(s) held by another process on ${outDir}`);
      waitingForOthers = true;
      await new Promise((resolve) => setTimeout(resolve, CLAIM_POLL_MS));
      state = plan();
      done = doneOf();
      continue;
    }
    waitingForOthers = false;
    const k = done.length + 1;
    const lrNote = spec.split === 'validation' ? ` lr ${spec.train.lr} (validation)` : '';
    const tag = `[${k}/${state.planned.length}] ${spec.memberships.map((m) => `${m.group}:${m.label}`).join(', ')} seed ${spec.seed}${lrNote}`;
    log(`${tag}: ${spec.adapter.kind}, ${spec.train.steps} steps`);
    const runDir = path.join(runsDir, spec.id);
    const every = Math.max(1, Math.round(spec.train.steps / 5));
    const held = spec.heldOut ? heldOut.get(spec.heldOut.group)! : undefined;
    let result: FineTuneResult;
    try {
      result = await fineTune({
        model: c.model,
        adapter: spec.adapter,
        trainData: held?.trainData ?? trainData,
        train: spec.train,
        seed: spec.seed,
        ...common,
        evalItems: spec.split === 'validation' ? selectionItems : (held?.evalItems ?? evalItems),
        // Latency is a property of the architecture: measured on the main runs only.
        latency: spec.split || held ? undefined : c.latency,
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
    } finally {
      releaseRun(runDir);
    }
    finished.set(spec.id, result);
    executed++;
    log(`${tag}: done in ${result.wallSeconds.toFixed(0)} s, average accuracy ${(100 * result.after.average).toFixed(2)}%`);
    const before = state.waiting.length;
    state = plan();
    done = doneOf();
    if (state.waiting.length < before) log(`learning rates chosen: ${state.choices.filter((ch) => ch.lr !== undefined).map((ch) => `${ch.key} ${ch.lr}`).join(', ')}; ${state.planned.length} runs planned`);
    call.executed = executed;
    files = await report();
  }
  if (opts.latencyPass) {
    log('latency pass: base model and every main method, 3 rounds');
    const methods = new Map<string, RunSpec['adapter']>();
    for (const p of state.planned) for (const m of p.memberships) if (m.group === 'main' && !methods.has(m.label)) methods.set(m.label, p.adapter);
    const lat = await latencyPass(c.model, methods, evalItems, c.latency);
    writeFileAtomicSync(path.join(outDir, 'latency.json'), JSON.stringify({ ...lat, machine: machineDescription() }, null, 2) + '\n');
    files = await report();
  }
  return { outDir, planned: state.planned, done, base, ...files, executed };
}

/** Per held-out group: the training file without its tasks, and its test items. */
async function heldOutInputs(c: ExperimentConfig, outDir: string, evalItems: MultipleChoiceItem[]): Promise<Map<string, { trainData: string; evalItems: MultipleChoiceItem[] }>> {
  const out = new Map<string, { trainData: string; evalItems: MultipleChoiceItem[] }>();
  for (const [group, tasks] of Object.entries(c.heldOut?.groups ?? {})) {
    const left = new Set(tasks);
    const items = evalItems.filter((it) => left.has(it.task));
    const missing = tasks.filter((t) => !items.some((it) => it.task === t));
    if (missing.length > 0) throw new UserError(`${c.evalData}: no test item of task ${missing.join(', ')} (held-out group "${group}")`);
    out.set(group, { trainData: await filteredTrainData(c, outDir, `train-without-${group}`, (t) => !left.has(t)), evalItems: items });
  }
  return out;
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
