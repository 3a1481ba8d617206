/**
 * One fine-tuning run, in process, from a base model directory to measured results: load the
 * base, optionally measure it first, inject the adapter, train on the task mixture, then
 * measure accuracy per task and generation latency; for routed adapters also the mean routing
 * per task and layer, and for MoR optionally the static-routing merge per task (each task's
 * mean routing vector folded into W, that task re-scored and timed).
 *
 * Both `mor demo` and `mor experiment` run through {@link fineTune}; loading, injection, training
 * and the training outputs are the shared training session (train/session.ts), as for `mor train`.
 */
import * as fs from 'node:fs';
import { initBackend } from '../backend/tf.ts';
import type { AdapterConfig } from '../adapters/config.ts';
import { countParameters } from '../adapters/params.ts';
import { adapterKind } from '../adapters/registry.ts';
import { DataMixture } from '../data/mix.ts';
import type { MultipleChoiceItem } from '../data/formats.ts';
import { loadConfig, loadModel, weightPlacement } from '../models/load.ts';
import { sizeTrainingRun } from '../train/memory.ts';
import { mergeWithRouting } from '../routing/fixedRouting.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { trainingSession } from '../train/session.ts';
import type { TrainRecord } from '../train/metrics.ts';
import { formulaTrainableParameters, llamaParameterCount } from './budget.ts';
import { latencyItems, measureAccuracy, measureLatency, type AccuracyResult } from './measure.ts';
import type { TrainSettings } from './config.ts';

/** Mean routing weight per expert: task -> module path -> `[N]`. */
export type RoutingByTask = Record<string, Record<string, number[]>>;

/** What {@link fineTune} needs. */
export interface FineTuneOptions {
  /** Base model directory (HF layout with tokenizer files). */
  model: string;
  /** Adapter config (parsed); its `seed` is replaced by `seed`. */
  adapter: AdapterConfig;
  /** Training JSONL (chat records with `task`). */
  trainData: string;
  train: TrainSettings;
  /** Run seed: adapter init, data order, dropout. */
  seed: number;
  /** Multiple-choice items scored before (optional) and after training. */
  evalItems: MultipleChoiceItem[];
  evalBatchSize: number;
  evalMaxLength: number;
  /** Also score the base model before injecting the adapter. */
  evalBefore?: boolean;
  /** Generation latency measurement; absent: not measured. */
  latency?: { newTokens: number; prompts: number };
  /** Routed adapters: training examples per task for the mean routing vectors. Default 32. */
  routingExamplesPerTask?: number;
  /** MoR: merge each task's mean routing vector and re-score that task. */
  staticRouting?: boolean;
  /** Output folder for metrics.jsonl, loss.svg, routing.svg/json and (with saveAdapter) adapter/. */
  outDir?: string;
  saveAdapter?: boolean;
  /** Write `routing.svg` (routed adapters) to outDir. Default true; `routing.json` is always written. */
  routingPlot?: boolean;
  /** Log every N updates to metrics.jsonl / onLog. Default 10. */
  logEvery?: number;
  /** Called after each update. */
  onStep?: (rec: TrainRecord, total: number) => void;
  /** Phase messages (`evaluating`, `training`, ...). */
  log?: (line: string) => void;
  /** Progress of evaluations: (phase, done, total). */
  onEvalProgress?: (phase: string, done: number, total: number) => void;
}

/** Static routing of one task: accuracy and latency with that task's mean routing merged into W. */
export interface StaticRoutingResult {
  accuracy: number;
  /** Dynamic (learned router) accuracy of the same items, for comparison. */
  dynamicAccuracy: number;
  latencyMsPerToken?: number;
}

/** What {@link fineTune} returns (plain JSON). */
export interface FineTuneResult {
  adapter: AdapterConfig;
  seed: number;
  steps: number;
  /** Counted on the model (`countParameters`). */
  trainableParams: number;
  /** By the MoR.md formulas (budget.ts), computed independently. */
  formulaParams: number;
  /** Parameters of the base model without adapters. */
  baseParams: number;
  /** `100 * trainable / base`. */
  trainablePercent: number;
  /** Mean seconds per optimizer update (this run, whole loop). */
  secPerStep: number;
  trainSeconds: number;
  /** Mean training loss over the first and the last 10 % of the updates. */
  firstLoss: number;
  lastLoss: number;
  /** Logged training losses `[step, loss]`. */
  lossCurve: [number, number][];
  before?: AccuracyResult;
  after: AccuracyResult;
  beforeLatencyMsPerToken?: number;
  latencyMsPerToken?: number;
  routing?: RoutingByTask;
  staticRouting?: Record<string, StaticRoutingResult>;
  /** Files written (outDir). */
  files: string[];
  wallSeconds: number;
}

function meanOf(xs: number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Train, measure, and return the results of one run (see the module comment). */
export async function fineTune(o: FineTuneOptions): Promise<FineTuneResult> {
  await initBackend();
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  if (o.outDir) fs.mkdirSync(o.outDir, { recursive: true });
  const tok = Tokenizer.fromDir(o.model);
  const evalOpts = (phase: string) => ({
    batchSize: o.evalBatchSize,
    maxLength: o.evalMaxLength,
    onProgress: (d: number, t: number) => o.onEvalProgress?.(phase, d, t),
  });
  const latencyPrompts = o.latency ? latencyItems(o.evalItems, o.latency.prompts) : [];
  const adapter = { ...o.adapter, seed: o.seed } as AdapterConfig;
  const mixture = await DataMixture.load([{ path: o.trainData }], tok, { seed: o.seed, maxLength: o.train.maxLength });
  const logEvery = o.logEvery ?? 10;

  let baseParams = 0;
  let formulaParams = 0;
  let trainableParams = 0;
  let before: AccuracyResult | undefined;
  let beforeLatency: number | undefined;
  // The size policy of `mor train`: refuse a run the heap cannot hold, resolve 'auto'.
  const memory = sizeTrainingRun({ ...o.train, adapter }, loadConfig(o.model), weightPlacement(o.model));
  return trainingSession(
    {
      model: o.model,
      adapter,
      memory,
      tokenizer: tok,
      mixture,
      data: [o.trainData],
      batchSize: o.train.batchSize,
      maxLength: o.train.maxLength,
      steps: o.train.steps,
      outDir: o.outDir,
      saveAdapter: o.saveAdapter,
      routing: {
        examplesPerTask: o.routingExamplesPerTask ?? 32,
        plot: o.routingPlot ?? true,
        title: `${adapter.kind}: mean routing weight per expert, by task (training data)`,
      },
      onBase: async (base) => {
        baseParams = llamaParameterCount(base.config);
        const counted = countParameters(base).all;
        if (counted !== baseParams) throw new Error(`base model: countParameters() gives ${counted} parameters, the formula ${baseParams}`);
        if (o.evalBefore) {
          log(`evaluating the base model on ${o.evalItems.length} items`);
          before = await measureAccuracy(base, tok, o.evalItems, evalOpts('before'));
          if (o.latency) beforeLatency = await measureLatency(base, tok, latencyPrompts, o.latency);
        }
      },
      onInjected: (peft) => {
        trainableParams = peft.countParameters().trainable;
        formulaParams = formulaTrainableParameters(peft.model.config, adapter);
        if (formulaParams !== trainableParams) {
          throw new Error(`${adapter.kind}: countParameters() gives ${trainableParams} trainable parameters, the MoR.md formulas ${formulaParams}`);
        }
        log(`training ${adapter.kind}: ${trainableParams.toLocaleString('en-US')} trainable parameters, ${o.train.steps} steps`);
      },
      onStep: o.onStep,
      trainer: {
        schedule: { lr: o.train.lr, warmupSteps: o.train.warmup, kind: o.train.schedule, minLr: 0 },
        optimizer: { weightDecay: o.train.weightDecay },
        maxGradNorm: o.train.maxGradNorm || undefined,
        seed: o.seed,
        logEvery,
        info: { model: o.model, adapter: adapter.kind },
      },
    },
    async ({ peft, model, result, trainSeconds, files, routing: stats }) => {
      const trainRecs = result.log.filter((r): r is TrainRecord => r.type === 'train');
      const tenth = Math.max(1, Math.floor(trainRecs.length / 10));
      const firstLoss = meanOf(trainRecs.slice(0, tenth).map((r) => r.loss));
      const lastLoss = meanOf(trainRecs.slice(-tenth).map((r) => r.loss));
      const lossCurve = trainRecs.filter((r) => r.step % logEvery === 0 || r.step === 1 || r.step === o.train.steps).map((r) => [r.step, r.loss] as [number, number]);

      log(`evaluating the fine-tuned model on ${o.evalItems.length} items`);
      const after = await measureAccuracy(model, tok, o.evalItems, evalOpts('after'));
      const latency = o.latency ? await measureLatency(model, tok, latencyPrompts, o.latency) : undefined;

      let routing: RoutingByTask | undefined;
      let staticRouting: Record<string, StaticRoutingResult> | undefined;
      if (stats) {
        routing = {};
        for (const task of stats.groups().sort()) {
          routing[task] = {};
          for (const [p, v] of stats.means(task)) routing[task][p] = Array.from(v);
        }
        if (o.staticRouting && adapterKind(adapter.kind).merge === 'fixedRouting') {
          staticRouting = {};
          for (const task of Object.keys(after.tasks)) {
            const vectors = stats.means(task);
            if (vectors.size === 0) continue;
            log(`static routing: ${task}`);
            const items = o.evalItems.filter((it) => it.task === task);
            mergeWithRouting(peft, vectors);
            try {
              const acc = await measureAccuracy(model, tok, items, evalOpts(`static ${task}`));
              const lat = o.latency ? await measureLatency(model, tok, items.slice(0, o.latency.prompts), o.latency) : undefined;
              staticRouting[task] = { accuracy: acc.average, dynamicAccuracy: after.tasks[task], latencyMsPerToken: lat };
            } finally {
              peft.unmerge();
            }
          }
        }
      }
      return {
        adapter,
        seed: o.seed,
        steps: result.step,
        trainableParams,
        formulaParams,
        baseParams,
        trainablePercent: (100 * trainableParams) / baseParams,
        secPerStep: trainSeconds / Math.max(1, result.step - result.resumedFrom),
        trainSeconds,
        firstLoss,
        lastLoss,
        lossCurve,
        before,
        after,
        beforeLatencyMsPerToken: beforeLatency,
        latencyMsPerToken: latency,
        routing,
        staticRouting,
        files,
        wallSeconds: (performance.now() - t0) / 1000,
      };
    },
  );
}

/** Base-model measurements (no adapter): accuracy and latency, for the report's first row. */
export async function measureBase(o: {
  model: string;
  evalItems: MultipleChoiceItem[];
  evalBatchSize: number;
  evalMaxLength: number;
  latency?: { newTokens: number; prompts: number };
  onEvalProgress?: (phase: string, done: number, total: number) => void;
}): Promise<{ accuracy: AccuracyResult; latencyMsPerToken?: number; baseParams: number }> {
  await initBackend();
  const tok = Tokenizer.fromDir(o.model);
  const base = await loadModel(o.model);
  try {
    const accuracy = await measureAccuracy(base, tok, o.evalItems, {
      batchSize: o.evalBatchSize,
      maxLength: o.evalMaxLength,
      onProgress: (d, t) => o.onEvalProgress?.('base', d, t),
    });
    const latencyMsPerToken = o.latency ? await measureLatency(base, tok, latencyItems(o.evalItems, o.latency.prompts), o.latency) : undefined;
    return { accuracy, latencyMsPerToken, baseParams: llamaParameterCount(base.config) };
  } finally {
    base.dispose();
  }
}
