/**
 * `runTraining(config)`: the library form of `mor train`. Validates the run folder and every input,
 * sizes the run, then trains through the shared training session (session.ts) with periodic
 * evaluation loss, resumable checkpoints and a final evaluation. Outputs:
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
import { initBackend } from '../backend/tf.ts';
import { loadConfig, weightPlacement } from '../models/load.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { DataMixture, loadExamples, type BatchStreamState } from '../data/mix.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import type { TrainResult } from './trainer.ts';
import type { TrainConfig } from './config.ts';
import { ProgressReporter } from './progress.ts';
import { checkResumable, clearRunFolder, describeChange, planRunFolder } from './runFolder.ts';
import { checkEvaluationInputs, evaluate, type EvaluateResult } from '../eval/evaluate.ts';
import { sizeTrainingRun } from './memory.ts';
import { checkpointedLayers } from '../models/memoryPlan.ts';
import { trainingSession } from './session.ts';

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

export { batchLoss, batchTargets } from './batchLoss.ts';

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
  if (config.gradientCheckpointing === 'auto' && size.gradientCheckpointing !== false) {
    const n = checkpointedLayers(size.plan.shape);
    log(`gradient checkpointing: on for ${n === size.plan.shape.model.numHiddenLayers ? 'every layer' : `the last ${n} of ${size.plan.shape.model.numHiddenLayers} layers`} (the activations would not fit without it)`);
  }
  const perEpoch = mixture.sources.reduce((s, x) => s + x.examplesPerEpoch, 0);
  const totalSteps = config.steps ?? Math.max(1, Math.ceil((config.epochs! * perEpoch) / (config.batchSize * config.gradAccumulation)));

  return trainingSession(
    {
      model: config.model,
      adapter: config.adapter,
      tokenizer,
      mixture,
      data: config.data,
      batchSize: config.batchSize,
      maxLength: config.maxLength,
      steps: totalSteps,
      memory: size,
      evalExamples,
      evalEvery: config.evalEvery,
      positionWarnings: true,
      outDir,
      saveAdapter: true,
      routing: {
        examplesPerTask: ROUTING_EXAMPLES_PER_TASK,
        plot: true,
        title: `${config.adapter.kind}: mean routing weight per expert, by task`,
      },
      onInjected: (peft, stream) => {
        // Checked before the first line of output, so a refusal is exactly one error line: the
        // parameters and step fit, and the data stream can take the stored position (the trainer
        // restores it again; same data fingerprint, or a UserError).
        if (plan.mode === 'resume') {
          checkResumable(plan.checkpoint, peft.trainableParameters(), totalSteps);
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
      },
      progress: () =>
        opts.progress === false
          ? undefined
          : typeof opts.progress === 'function'
            ? opts.progress(totalSteps)
            : (opts.progress ?? new ProgressReporter({ total: totalSteps })),
      trainer: {
        schedule: { lr: config.lr, warmupSteps: config.warmup, kind: config.schedule, minLr: config.minLr },
        optimizer: { beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay },
        gradAccumulation: config.gradAccumulation,
        maxGradNorm: config.maxGradNorm || undefined,
        seed: config.seed,
        checkpointDir: path.join(outDir, 'checkpoints'),
        checkpointEvery: config.checkpointEvery,
        keepCheckpoints: config.keepCheckpoints,
        resumeFrom: plan.mode === 'resume' ? plan.checkpoint : undefined,
        logEvery: config.logEvery,
        signal: opts.signal,
        // The config travels with every checkpoint: --resume compares against it (runFolder.ts).
        info: { model: config.model, adapter: config.adapter.kind, config },
      },
      log,
    },
    async (s) => {
      let finalEval: EvaluateResult | undefined;
      if (s.adapterDir && config.finalEval?.length) {
        finalEval = await evaluate({
          model: config.model,
          adapter: s.adapterDir,
          data: config.finalEval,
          outDir: path.join(outDir, 'eval'),
          batchSize: config.batchSize,
          positions: s.positions,
        });
        log(`final evaluation written to ${path.join(outDir, 'eval')}`);
      }
      const { adapterDir, metricsFile, lossPlot, routingPlot } = s;
      return { ...s.result, outDir, adapterDir, metricsFile: metricsFile!, lossPlot: lossPlot!, routingPlot, finalEval, totalSteps };
    },
  );
}
