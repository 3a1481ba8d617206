/**
 * `runTraining(config)`: the library form of `mor train`. Wires a base model directory, an
 * adapter, the multi-task data mixture, the trainer, periodic evaluation loss and the outputs:
 *
 * ```
 * <outDir>/checkpoints/      resumable checkpoints (see checkpoint.ts)
 * <outDir>/metrics.jsonl     one record per logged step and per evaluation
 * <outDir>/loss.svg          train (and eval) loss curves
 * <outDir>/adapter/          the trained adapter, PEFT layout (when the run completes)
 * <outDir>/routing.svg       MoR/MoELoRA: mean routing weight per expert, task and layer, over
 *                            the first 64 training examples of each task
 * <outDir>/routing.json      the same numbers (`{ [module]: { [task]: { tokens, mean } } }`)
 * <outDir>/eval/             `finalEval` results: eval.json, eval.md, predictions.jsonl
 * <outDir>/train_config.json the validated config, defaults filled in
 * ```
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, tf } from '../backend/tf.ts';
import { loadConfig, loadModel, weightPlacement } from '../models/load.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { getPeftModel, type PeftModel } from '../adapters/inject.ts';
import { BatchStream, DataMixture, loadExamples, loadExamplesPerTask, type BatchStreamState } from '../data/mix.ts';
import { batchesOf, countTargets, padIdOf, type Batch } from '../data/batch.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { savePretrained as saveAdapter } from '../adapters/save.ts';
import { inferenceContext, type ForwardContext } from '../nn/context.ts';
import type { LlamaForCausalLM, LossOptions } from '../models/llama/model.ts';
import { lossCurveSvg } from '../plot/lossCurve.ts';
import { routingCellsFromStats, routingHeatmapSvg } from '../routing/heatmap.ts';
import { routingByTask } from '../routing/stats.ts';
import { adapterKind } from '../adapters/registry.ts';
import { train, type ResumableIterator, type TrainResult } from './trainer.ts';
import type { MetricRecord } from './metrics.ts';
import type { TrainConfig } from './config.ts';
import { ProgressReporter } from './progress.ts';
import { checkResumable, clearRunFolder, describeChange, planRunFolder } from './runFolder.ts';
import { checkEvaluationInputs, evaluate, type EvaluateResult } from '../eval/evaluate.ts';
import { sizeTrainingRun } from './memory.ts';
import { longestRow, PositionLimit } from '../models/positions.ts';
import { maxOf } from '../util/array.ts';

/** Options of {@link runTraining} that are not part of the config file. */
export interface RunTrainingOptions {
  /**
   * Continue from the latest checkpoint in `<outDir>/checkpoints`, if the stored config allows
   * it (see runFolder.ts: training-changing differences are refused, naming them).
   */
  resume?: boolean;
  /** Replace an existing run in `outDir` (its files are removed once every input is validated). */
  overwrite?: boolean;
  /**
   * Abort (Ctrl-C): finish the step, save a checkpoint and the metrics, return with
   * `stopped: 'interrupted'` (no adapter); the caller says so (the CLI: one line, exit 130 / 143).
   */
  signal?: AbortSignal;
  /** Progress output: a reporter, a factory given the total steps, or false for none. Default: a reporter on stderr. */
  progress?: ProgressReporter | ((totalSteps: number) => ProgressReporter) | false;
  /** Informational lines (data sizes, parameter counts, where files went). Default: stderr. */
  log?: (line: string) => void;
}

/** What {@link runTraining} returns. */
export interface RunTrainingResult extends TrainResult {
  outDir: string;
  /** Directory of the saved adapter (only when the run completed). */
  adapterDir?: string;
  metricsFile: string;
  lossPlot: string;
  /** Routing heatmap (routed adapters, completed runs). */
  routingPlot?: string;
  /** Scores on the `finalEval` files (completed runs). */
  finalEval?: EvaluateResult;
  /** Total number of updates of the run. */
  totalSteps: number;
}

/**
 * Training examples per task behind routing.json/svg: the mean of a router's softmax over
 * thousands of tokens per task; more only lengthens the run (256 took 12.4 s on the suite, 64 3.2 s).
 */
export const ROUTING_EXAMPLES_PER_TASK = 64;

/** Number of tokens that get a loss in a batch (per-row shift excluded, as the model's loss). */
export function batchTargets(b: Batch): number {
  let n = 0;
  for (let r = 0; r < b.batchSize; r++) n += countTargets(b.labels.subarray(r * b.seqLen, (r + 1) * b.seqLen));
  return n;
}

/** Causal-LM loss of one batch (mean over target tokens), for the trainer's lossFn. */
export function batchLoss(
  model: LlamaForCausalLM,
  b: Batch,
  ctx: ForwardContext,
  reduction: 'mean' | 'sum' = 'mean',
  memory: Pick<LossOptions, 'gradientCheckpointing' | 'lossChunkSize'> = {},
): tf.Scalar {
  // No tidy here: auxiliary losses pushed to ctx must outlive this call (the trainer sums them).
  const ids = tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32'); // [B, T]
  const labels = tf.tensor2d(b.labels, [b.batchSize, b.seqLen], 'int32');
  const mask = tf.tensor2d(b.attentionMask, [b.batchSize, b.seqLen], 'int32');
  try {
    const { gradientCheckpointing, lossChunkSize } = memory;
    return model.loss(ids, labels, { attentionMask: mask, ctx, reduction, gradientCheckpointing, lossChunkSize });
  } finally {
    ids.dispose();
    labels.dispose();
    mask.dispose();
  }
}

/** Train an adapter as `config` says; see the module comment for the outputs. */
export async function runTraining(config: TrainConfig, opts: RunTrainingOptions = {}): Promise<RunTrainingResult> {
  await initBackend();
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const outDir = config.outDir;

  // Decide what may happen to the run folder (new, --resume, --overwrite) and validate all
  // input (tokenizer, data, final-eval files, output locations) before loading the model or
  // writing anything, so a bad file or a refused folder fails fast with one line, before the
  // first training step, and never touches an existing run directory.
  const plan = await planRunFolder(config, { resume: opts.resume, overwrite: opts.overwrite });
  const tokenizer = Tokenizer.fromDir(config.model);
  const mixture = await DataMixture.load(config.data, tokenizer, { seed: config.seed, maxLength: config.maxLength });
  const evalExamples = config.evalData
    ? await loadExamples(config.evalData, tokenizer, { maxLength: config.maxLength })
    : undefined;
  if (config.finalEval?.length) {
    await checkEvaluationInputs({ model: config.model, data: config.finalEval, outDir: path.join(outDir, 'eval'), outFlag: 'outDir' }, tokenizer);
  }

  // Refuse, with one line naming the knobs, a run the heap cannot hold; resolve 'auto'.
  const size = sizeTrainingRun(config, loadConfig(config.model), weightPlacement(config.model));
  if (config.gradientCheckpointing === 'auto' && size.gradientCheckpointing) log('gradient checkpointing: on (the activations would not fit without it)');
  const base = await loadModel(config.model);
  let peft: PeftModel<LlamaForCausalLM>;
  try {
    peft = getPeftModel(base, config.adapter);
  } catch (e) {
    base.dispose(); // e.g. target modules that match nothing: free the loaded weights
    throw e;
  }
  try {
    const model = peft.model;
    const params = peft.trainableParameters();
    const perEpoch = mixture.sources.reduce((s, x) => s + x.examplesPerEpoch, 0);
    const totalSteps = config.steps ?? Math.max(1, Math.ceil((config.epochs! * perEpoch) / (config.batchSize * config.gradAccumulation)));
    const stream = new BatchStream(mixture, { batchSize: config.batchSize });
    // Checked before the first line of output, so a refusal is exactly one error line: the
    // parameters and step fit, and the data stream can take the stored position (the trainer
    // restores it again; same data fingerprint, or a UserError).
    if (plan.mode === 'resume') {
      checkResumable(plan.checkpoint, params, totalSteps);
      stream.restore(plan.checkpoint.data.dataState as BatchStreamState);
    }
    const counts = peft.countParameters();
    log(
      `trainable params: ${counts.trainable.toLocaleString('en-US')} || all params: ${counts.all.toLocaleString('en-US')}` +
        ` || trainable%: ${counts.trainablePercent.toFixed(4)}`,
    );
    log(`data: ${perEpoch} examples per epoch from ${config.data.length} file(s); ${totalSteps} updates`);
    if (plan.mode === 'resume') {
      for (const s of plan.skipped) log(`warning: skipped damaged checkpoint ${s.path} (${s.reason})`);
      const changed = plan.changes.length ? `; changed: ${plan.changes.map(describeChange).join('; ')}` : '';
      log(`resuming from ${plan.checkpoint.path} (step ${plan.checkpoint.data.step} of ${totalSteps})${changed}`);
    }

    // Everything is validated: only now does the run folder change.
    clearRunFolder(plan);
    fs.mkdirSync(outDir, { recursive: true });
    writeFileAtomicSync(path.join(outDir, 'train_config.json'), JSON.stringify(config, null, 2) + '\n');
    // Sequences past the model's max_position_embeddings: one warning per run (training data,
    // eval-loss data, final evaluation), at the first one fed.
    const positions = new PositionLimit(model.config.maxPositionEmbeddings, log);
    const fix = `lower maxLength (now ${config.maxLength}) to ${positions.limit}`;
    const data: ResumableIterator<Batch> = {
      next: () => {
        const b = stream.next();
        positions.check(longestRow(b), 'a training sequence', fix);
        return b;
      },
      getState: () => stream.state(),
      setState: (s) => stream.restore(s as BatchStreamState),
    };

    let evalFn: ((step: number) => Record<string, number>) | undefined;
    if (evalExamples) {
      const evalBatches = batchesOf(evalExamples, config.batchSize, { padId: padIdOf(tokenizer), bucket: false });
      for (const b of evalBatches) positions.check(longestRow(b), 'an evaluation sequence (evalData)', fix);
      evalFn = () => {
        let sum = 0;
        let count = 0;
        for (const b of evalBatches) {
          const ctx = inferenceContext();
          const l = tf.tidy(() => {
            const s = batchLoss(model, b, ctx, 'sum', size);
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

    const progress = opts.progress === false
      ? undefined
      : typeof opts.progress === 'function'
        ? opts.progress(totalSteps)
        : (opts.progress ?? new ProgressReporter({ total: totalSteps }));
    const metricsFile = path.join(outDir, 'metrics.jsonl');
    let result: TrainResult;
    try {
      result = await train<Batch>({
        params,
        lossFn: (b, ctx) => batchLoss(model, b, ctx, 'mean', size),
        data,
        steps: totalSteps,
        schedule: { lr: config.lr, warmupSteps: config.warmup, kind: config.schedule, minLr: config.minLr },
        optimizer: { beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay },
        gradAccumulation: config.gradAccumulation,
        microBatchWeight: batchTargets,
        maxGradNorm: config.maxGradNorm || undefined,
        seed: config.seed,
        checkpointDir: path.join(outDir, 'checkpoints'),
        checkpointEvery: config.checkpointEvery,
        keepCheckpoints: config.keepCheckpoints,
        resumeFrom: plan.mode === 'resume' ? plan.checkpoint : undefined,
        evalEvery: evalFn ? (config.evalEvery ?? totalSteps) : undefined,
        evalFn,
        logEvery: config.logEvery,
        metricsFile,
        signal: opts.signal,
        onStep: (r) => progress?.step(r),
        onLog: (r: MetricRecord) => {
          if (r.type === 'eval') progress?.evaluation(r);
        },
        // The config travels with every checkpoint: --resume compares against it (runFolder.ts).
        info: { model: config.model, adapter: config.adapter.kind, config },
      });
    } finally {
      progress?.stop();
    }

    const lossPlot = path.join(outDir, 'loss.svg');
    writeFileAtomicSync(lossPlot, await lossCurveSvg(result.log, { title: `${config.adapter.kind} training loss` }));
    let adapterDir: string | undefined;
    let routingPlot: string | undefined;
    if (result.stopped === 'completed') {
      adapterDir = path.join(outDir, 'adapter');
      saveAdapter(peft, adapterDir);
      log(`adapter saved to ${adapterDir}`);
      if (adapterKind(config.adapter.kind).routes(config.adapter)) {
        const perTask = ROUTING_EXAMPLES_PER_TASK;
        const examples = await loadExamplesPerTask(config.data, tokenizer, { maxLength: config.maxLength, perTask });
        positions.check(maxOf(examples.map((e) => e.inputIds.length)), 'a routing example (routing.json)', fix);
        const stats = routingByTask(model, examples, config.batchSize, padIdOf(tokenizer), perTask);
        writeFileAtomicSync(path.join(outDir, 'routing.json'), JSON.stringify(stats.toJSON(), null, 1) + '\n');
        routingPlot = path.join(outDir, 'routing.svg');
        const title = `${config.adapter.kind}: mean routing weight per expert, by task`;
        writeFileAtomicSync(routingPlot, await routingHeatmapSvg(routingCellsFromStats(stats), { title }));
      }
    }
    let finalEval: EvaluateResult | undefined;
    if (adapterDir && config.finalEval?.length) {
      finalEval = await evaluate({
        model: config.model,
        adapter: adapterDir,
        data: config.finalEval,
        outDir: path.join(outDir, 'eval'),
        batchSize: config.batchSize,
        positions,
      });
      log(`final evaluation written to ${path.join(outDir, 'eval')}`);
    }
    return { ...result, outDir, adapterDir, metricsFile, lossPlot, routingPlot, finalEval, totalSteps };
  } finally {
    peft.dispose();
  }
}
