/**
 * `trainingSession(options, use)`: the one training pipeline behind `mor train` (run.ts),
 * `mor demo` and `mor experiment` (experiment/fineTune.ts). It loads the base model, injects
 * the adapter, streams batches from the task mixture, trains, and writes to `outDir`:
 *
 * ```
 * <outDir>/metrics.jsonl   one record per logged step and per evaluation
 * <outDir>/loss.svg        the training (and eval) loss curve
 * <outDir>/adapter/        the trained adapter, PEFT layout (saveAdapter, completed runs)
 * <outDir>/routing.json    routed adapters, completed runs: mean routing weight per expert,
 *                          task and layer (`{ [module]: { [task]: { tokens, mean } } }`)
 * <outDir>/routing.svg     the same as a heatmap (routing.plot)
 * ```
 *
 * What differs between the commands is an argument: the trainer's settings, eval loss,
 * position warnings, the memory policy, and two hooks (`onBase` before the adapter goes in,
 * `onInjected` before the first step). `use` receives the trained model while it is alive;
 * the session frees the model when `use` returns or throws.
 */
import * as path from 'node:path';
import { tf } from '../backend/tf.ts';
import { loadModel } from '../models/load.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { getPeftModel, type PeftModel } from '../adapters/inject.ts';
import type { AdapterConfig } from '../adapters/config.ts';
import { adapterKind } from '../adapters/registry.ts';
import { savePretrained as saveAdapter } from '../adapters/save.ts';
import { BatchStream, loadExamplesPerTask, type BatchStreamState, type DataMixture, type DataSource } from '../data/mix.ts';
import { batchesOf, padIdOf, type Batch } from '../data/batch.ts';
import { batchLoss, batchTargets, type LossMemory } from './batchLoss.ts';
import type { RenderedExample } from '../data/render.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { inferenceContext, type ForwardContext } from '../nn/context.ts';
import type { LlamaForCausalLM } from '../models/llama/model.ts';
import { longestRow, PositionLimit } from '../models/positions.ts';
import { lossCurveSvg } from '../plot/lossCurve.ts';
import { routingCellsFromStats, routingHeatmapSvg } from '../routing/heatmap.ts';
import { routingByTask, type RoutingStats } from '../routing/stats.ts';
import { maxOf } from '../util/array.ts';
import { train, type ResumableIterator, type TrainOptions, type TrainResult } from './trainer.ts';
import type { ProgressReporter } from './progress.ts';

/** Summed-loss-per-target-token over fixed batches, in inference mode (the eval loss). */
function evalLossFn(model: LlamaForCausalLM, batches: Batch[], memory: LossMemory): () => Record<string, number> {
  return () => {
    let sum = 0;
    let count = 0;
    for (const b of batches) {
      const ctx = inferenceContext();
      const l = tf.tidy(() => {
        const s = batchLoss(model, b, ctx, 'sum', memory);
        for (const a of ctx.auxLosses) a.dispose();
        return s;
      });
      sum += l.dataSync()[0];
      l.dispose();
      count += batchTargets(b);
    }
    return { loss: sum / Math.max(1, count) };
  };
}

/** Trainer settings the caller chooses; the session supplies params, loss, data and metrics file. */
export type SessionTrainerOptions = Omit<
  TrainOptions<Batch>,
  'params' | 'lossFn' | 'data' | 'steps' | 'microBatchWeight' | 'metricsFile' | 'evalFn' | 'evalEvery' | 'onStep'
>;

/** What {@link trainingSession} needs. */
export interface SessionOptions {
  /** Base model directory (HF layout). */
  model: string;
  /** The adapter to inject (parsed). */
  adapter: AdapterConfig;
  tokenizer: Tokenizer;
  /** The training mixture (loaded and validated by the caller, before the model). */
  mixture: DataMixture;
  /** The mixture's files: routing statistics read their first examples of each task. */
  data: (string | DataSource)[];
  batchSize: number;
  maxLength: number;
  /** Total optimizer updates. */
  steps: number;
  /** Everything else the trainer takes (schedule, optimizer, checkpoints, signal, ...). */
  trainer: SessionTrainerOptions;
  /** Loss memory policy. Default: none (full activations, one loss chunk). */
  memory?: LossMemory;
  /** Eval-loss examples, scored every `evalEvery` updates (default: at the end). */
  evalExamples?: RenderedExample[];
  evalEvery?: number;
  /** Warn (once, on `log`) about sequences past the model's max_position_embeddings. */
  positionWarnings?: boolean;
  /** Output folder (metrics, plots, adapter, routing). Without it nothing is written. */
  outDir?: string;
  /** Save the adapter to `<outDir>/adapter` when the run completes. */
  saveAdapter?: boolean;
  /** Routed adapters, completed runs: routing statistics over this many examples per task. */
  routing?: { examplesPerTask: number; plot: boolean; title: string };
  /** Runs on the loaded base model, before injection (e.g. scoring the base model). */
  onBase?: (base: LlamaForCausalLM) => void | Promise<void>;
  /** Runs after injection, before the first step (checks, log lines, preparing the run folder). */
  onInjected?: (peft: PeftModel<LlamaForCausalLM>, stream: BatchStream) => void | Promise<void>;
  /** Progress reporter, created after `onInjected`; stopped when training ends. */
  progress?: () => ProgressReporter | undefined;
  /** Called after each update, besides the progress reporter. */
  onStep?: TrainOptions<Batch>['onStep'];
  /** The session's informational lines (where the adapter went, position warnings). */
  log?: (line: string) => void;
}

/** What the session hands to `use`, and returns with `use`'s value. */
export interface TrainedSession {
  peft: PeftModel<LlamaForCausalLM>;
  model: LlamaForCausalLM;
  result: TrainResult;
  /** Seconds spent in the training loop. */
  trainSeconds: number;
  /** Files written, in order: metrics.jsonl, loss.svg, adapter/, routing.json, routing.svg. */
  files: string[];
  metricsFile?: string;
  lossPlot?: string;
  adapterDir?: string;
  routingPlot?: string;
  /** Routing statistics per task (routed adapters, completed runs, `routing` given). */
  routing?: RoutingStats;
  /** The run's position-limit warner (`positionWarnings`), for later evaluations. */
  positions?: PositionLimit;
}

/** Load, inject, train, save, plot and route; then `use` the trained model (see the module comment). */
export async function trainingSession<T>(o: SessionOptions, use: (s: TrainedSession) => Promise<T>): Promise<T> {
  const log = o.log ?? (() => {});
  const base = await loadModel(o.model);
  let peft: PeftModel<LlamaForCausalLM>;
  try {
    await o.onBase?.(base);
    peft = getPeftModel(base, o.adapter);
  } catch (e) {
    base.dispose(); // e.g. target modules that match nothing: free the loaded weights
    throw e;
  }
  try {
    const model = peft.model;
    const stream = new BatchStream(o.mixture, { batchSize: o.batchSize });
    await o.onInjected?.(peft, stream);

    // Sequences past the model's max_position_embeddings: one warning per run (training data,
    // eval-loss data, routing examples, later evaluations), at the first one fed.
    const positions = o.positionWarnings ? new PositionLimit(model.config.maxPositionEmbeddings, log) : undefined;
    const fix = positions ? `lower maxLength (now ${o.maxLength}) to ${positions.limit}` : '';
    const data: ResumableIterator<Batch> = {
      next: () => {
        const b = stream.next();
        positions?.check(longestRow(b), 'a training sequence', fix);
        return b;
      },
      getState: () => stream.state(),
      setState: (s) => stream.restore(s as BatchStreamState),
    };
    let evalFn: (() => Record<string, number>) | undefined;
    if (o.evalExamples) {
      const evalBatches = batchesOf(o.evalExamples, o.batchSize, { padId: padIdOf(o.tokenizer), bucket: false });
      for (const b of evalBatches) positions?.check(longestRow(b), 'an evaluation sequence (evalData)', fix);
      evalFn = evalLossFn(model, evalBatches, o.memory ?? {});
    }

    const files: string[] = [];
    const metricsFile = o.outDir ? path.join(o.outDir, 'metrics.jsonl') : undefined;
    const progress = o.progress?.();
    const tTrain = performance.now();
    let result: TrainResult;
    try {
      result = await train<Batch>({
        ...o.trainer,
        params: peft.trainableParameters(),
        lossFn: (b, ctx) => batchLoss(model, b, ctx, 'mean', o.memory ?? {}),
        data,
        steps: o.steps,
        microBatchWeight: batchTargets,
        evalEvery: evalFn ? (o.evalEvery ?? o.steps) : undefined,
        evalFn,
        metricsFile,
        onStep: (r, total) => {
          progress?.step(r);
          o.onStep?.(r, total);
        },
        onLog: (r) => {
          if (r.type === 'eval') progress?.evaluation(r);
          o.trainer.onLog?.(r);
        },
      });
    } finally {
      progress?.stop();
    }
    const trainSeconds = (performance.now() - tTrain) / 1000;

    const s: TrainedSession = { peft, model, result, trainSeconds, files, metricsFile, positions };
    if (o.outDir) {
      if (metricsFile) files.push(metricsFile);
      s.lossPlot = path.join(o.outDir, 'loss.svg');
      writeFileAtomicSync(s.lossPlot, await lossCurveSvg(result.log, { title: `${o.adapter.kind} training loss` }));
      files.push(s.lossPlot);
      if (result.stopped === 'completed' && o.saveAdapter) {
        s.adapterDir = path.join(o.outDir, 'adapter');
        saveAdapter(peft, s.adapterDir);
        files.push(s.adapterDir);
        log(`adapter saved to ${s.adapterDir}`);
      }
    }
    if (result.stopped === 'completed' && o.routing && adapterKind(o.adapter.kind).routes(o.adapter)) {
      await routeByTask(o, o.routing, s, fix);
    }
    return await use(s);
  } finally {
    peft.dispose();
  }
}

/** Routing statistics per task over the first training examples of each; routing.json/svg. */
async function routeByTask(o: SessionOptions, r: NonNullable<SessionOptions['routing']>, s: TrainedSession, fix: string): Promise<void> {
  const perTask = r.examplesPerTask;
  const examples = await loadExamplesPerTask(o.data, o.tokenizer, { maxLength: o.maxLength, perTask });
  s.positions?.check(maxOf(examples.map((e) => e.inputIds.length)), 'a routing example (routing.json)', fix);
  const stats = routingByTask(s.model, examples, o.batchSize, padIdOf(o.tokenizer), perTask);
  s.routing = stats;
  if (!o.outDir) return;
  const json = path.join(o.outDir, 'routing.json');
  writeFileAtomicSync(json, JSON.stringify(stats.toJSON(), null, 1) + '\n');
  s.files.push(json);
  if (r.plot) {
    s.routingPlot = path.join(o.outDir, 'routing.svg');
    writeFileAtomicSync(s.routingPlot, await routingHeatmapSvg(routingCellsFromStats(stats), { title: r.title }));
    s.files.push(s.routingPlot);
  }
}

