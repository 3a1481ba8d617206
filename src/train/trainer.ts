/**
 * The training loop, in the style of mlx-lm's trainer: it receives the trainable variables,
 * a loss function and a resumable batch iterator, and knows nothing about models.
 *
 * Per update: `gradAccumulation` micro-batches, each `loss = lossFn(batch, ctx) + sum(ctx.auxLosses)`
 * differentiated with `tf.variableGrads`; gradients averaged, clipped by global norm,
 * checked for NaN/Inf (the bad update is never applied), then one AdamW step with the
 * scheduled learning rate, after which no trainable tensor may hold a value past its weight
 * limit (see {@link TrainOptions.weightLimit}). Checkpoints (see checkpoint.ts) make `resume` continue with the
 * same loss sequence as an uninterrupted run; an AbortSignal (Ctrl-C) stops after the
 * current update and saves a checkpoint.
 */
import * as path from 'node:path';
import { initBackend, tf } from '../backend/tf.ts';
import type { ForwardContext } from '../nn/context.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';
import type { HostTensor } from '../io/safetensors.ts';
import { AdamW, type AdamWOptions } from './adamw.ts';
import { lrAt, type ScheduleConfig } from './schedule.ts';
import { clipCoefficient, globalNorm } from './clip.ts';
import { tensorStats } from '../backend/optimizerKernels.ts';
import { loadLatestCheckpoint, saveCheckpoint, type CheckpointData } from './checkpoint.ts';
import { MetricsWriter, type EvalRecord, type MetricRecord, type TrainRecord } from './metrics.ts';

/**
 * A batch source the trainer can save and restore. `next()` returns the next batch (an
 * endless stream: cycle epochs inside); `getState()` returns a JSON-serialisable position
 * such that `setState(s)` on a fresh iterator yields exactly the batches that followed.
 */
export interface ResumableIterator<B> {
  next(): B;
  getState(): unknown;
  setState(state: unknown): void;
}

/** Options of {@link train}. */
export interface TrainOptions<B> {
  /** Trainable variables by name (e.g. `module.trainableParameters()`). */
  params: readonly [string, tf.Variable][];
  /**
   * Main loss of one micro-batch. Runs inside the gradient tape; must not dispose its
   * inputs' variables. Auxiliary losses pushed to `ctx.auxLosses` are added by the trainer.
   */
  lossFn: (batch: B, ctx: ForwardContext) => tf.Scalar;
  /** Training batches (see {@link ResumableIterator}). */
  data: ResumableIterator<B>;
  /** Total number of optimizer updates. */
  steps: number;
  /** Peak learning rate, warmup and decay; `totalSteps` defaults to `steps`. */
  schedule: Omit<ScheduleConfig, 'totalSteps'> & { totalSteps?: number };
  /** AdamW hyper-parameters. */
  optimizer?: AdamWOptions;
  /** Micro-batches per update; gradients and losses are averaged over them. Default 1. */
  gradAccumulation?: number;
  /**
   * Weight of a micro-batch in the average over `gradAccumulation` micro-batches. Default:
   * equal weights (HF Trainer's classic behaviour). For a per-token mean loss, returning the
   * number of target tokens makes the accumulated update equal one big batch exactly.
   */
  microBatchWeight?: (batch: B) => number;
  /** Clip the global gradient norm to this value. Default: no clipping. */
  maxGradNorm?: number;
  /**
   * Runaway weights stop the run: after each update, a trainable tensor whose largest |value|
   * passes `max(weightLimit, 10 x its largest |value| when the run started or resumed)` ends it
   * with a UserError, as a NaN loss does. Adam moves every weight by about the learning rate per
   * update whatever the gradient's size, so a learning rate far too high (LoRA at lr 1000)
   * drives weights into the thousands while the loss sits still and stays finite; nothing else
   * would notice. Default {@link WEIGHT_LIMIT}; `false`: no check.
   */
  weightLimit?: number | false;
  /** Run seed: dropout seeds (`ctx.seed`) are drawn from a generator seeded with it. Default 0. */
  seed?: number;
  /** Where checkpoints go. Without it nothing is saved (and Ctrl-C just stops). */
  checkpointDir?: string;
  /** Save every N updates (and at the end). Default: only at the end / on interrupt. */
  checkpointEvery?: number;
  /** How many checkpoints to keep. Default 3. */
  keepCheckpoints?: number;
  /** Continue from the latest complete checkpoint in `checkpointDir` (error if none). */
  resume?: boolean;
  /**
   * Continue from this already loaded checkpoint (e.g. found and checked by the caller with
   * `findLatestCheckpoint` before anything was written); takes precedence over `resume`.
   */
  resumeFrom?: { path: string; data: CheckpointData };
  /** Evaluate every N updates (and at the end) with `evalFn`. */
  evalEvery?: number;
  /** Returns metrics such as `{ loss }`; should not touch the training RNG or data. */
  evalFn?: (step: number) => Record<string, number> | Promise<Record<string, number>>;
  /** Report every N updates to `onLog` and the metrics file (the last update always). Default 10. */
  logEvery?: number;
  /** Called for every logged train record and every eval record. */
  onLog?: (record: MetricRecord) => void;
  /** Called after every update (progress bars). */
  onStep?: (record: TrainRecord, totalSteps: number) => void;
  /** JSONL file receiving the logged records (rewritten from the checkpoint on resume). */
  metricsFile?: string;
  /** Abort (Ctrl-C): finish the current update, save a checkpoint, return. */
  signal?: AbortSignal;
  /** Tokens in a batch, for tok/s. Default: sum of `attentionMask`, else `batchSize * seqLen`, else 0. */
  countTokens?: (batch: B) => number;
  /** Extra JSON stored in each checkpoint's `trainer_state.json` (`info`). */
  info?: Record<string, unknown>;
}

/** What {@link train} returns. */
export interface TrainResult {
  /** Updates completed (including those before a resume). */
  step: number;
  /** `completed`, or `interrupted` when the signal stopped the run. */
  stopped: 'completed' | 'interrupted';
  /** Every record of the run, including those restored from the checkpoint. */
  log: MetricRecord[];
  /** Directory of the last checkpoint written or resumed from. */
  lastCheckpoint?: string;
  /** The step the run resumed from (0 for a fresh run). */
  resumedFrom: number;
}

/**
 * Default {@link TrainOptions.weightLimit}. Trained weights of LLaMA-family models and their
 * adapters sit well below 10 in magnitude; at 1,000 a LoRA product (B A x, summed over the hidden
 * size) saturates every activation, and no learning rate that trains reaches it.
 */
export const WEIGHT_LIMIT = 1000;

/** Default token count of a batch: duck-typed on the data engineer's `Batch`. */
export function defaultCountTokens(batch: unknown): number {
  const b = batch as { attentionMask?: ArrayLike<number>; batchSize?: number; seqLen?: number };
  if (b && b.attentionMask && typeof b.attentionMask.length === 'number') {
    let n = 0;
    for (let i = 0; i < b.attentionMask.length; i++) n += b.attentionMask[i] ? 1 : 0;
    return n;
  }
  if (b && typeof b.batchSize === 'number' && typeof b.seqLen === 'number') return b.batchSize * b.seqLen;
  return 0;
}

function hostTensor(v: tf.Variable): HostTensor {
  return { dtype: 'F32', shape: [...v.shape], data: v.dataSync() as Float32Array };
}

function validate<B>(o: TrainOptions<B>): void {
  const posInt = (n: number | undefined, what: string, optional = true): void => {
    if (n === undefined && optional) return;
    if (!Number.isInteger(n) || (n as number) < 1) throw new UserError(`${what} must be a positive integer (got ${n})`);
  };
  posInt(o.steps, 'steps', false);
  posInt(o.gradAccumulation, 'gradAccumulation');
  posInt(o.checkpointEvery, 'checkpointEvery');
  posInt(o.evalEvery, 'evalEvery');
  posInt(o.logEvery, 'logEvery');
  if (!(o.schedule.lr >= 0)) throw new UserError(`lr must be >= 0 (got ${o.schedule.lr})`);
  if (o.params.length === 0) throw new UserError('nothing to train: no trainable parameters');
  if (o.resume && !o.checkpointDir) throw new UserError('resume needs a checkpoint directory');
  if (o.evalEvery && !o.evalFn) throw new Error('evalEvery is set but no evalFn was given');
  if (o.weightLimit !== undefined && o.weightLimit !== false && !(o.weightLimit > 0)) {
    throw new UserError(`weightLimit must be a positive number or false (got ${o.weightLimit})`);
  }
}

/**
 * Largest |value| of each variable (0 for an empty one; NaN if it holds a NaN), with one read
 * from the backend: one native pass with the addon, else max and -min per variable (not abs,
 * so no copy of a (full fine-tuning) weight is made).
 */
function maxAbs(vars: readonly tf.Variable[]): Float32Array {
  const stats = tensorStats(vars);
  if (stats) return Float32Array.from(vars, (_, i) => stats[2 * i + 1]);
  const m = tf.tidy(() => tf.stack(vars.map((v) => (v.size > 0 ? tf.maximum(tf.max(v), tf.neg(tf.min(v))) : tf.scalar(0)))));
  const out = m.dataSync() as Float32Array;
  m.dispose();
  return out;
}

/**
 * What to try after a divergence, only what applies: before the first update nothing depends on
 * the learning rate; clipping is suggested only when it is off, and never for runaway weights
 * (Adam's step is about the learning rate whatever the gradient's norm).
 */
export function divergenceAdvice(
  step: number,
  cause: 'non-finite' | 'weights',
  o: { lr: number; maxGradNorm?: number; warmup?: number },
): string {
  if (cause === 'non-finite' && step === 1) {
    return 'no update had been applied yet, so it is not the learning rate: check the data and the base model (mor inspect --stats)';
  }
  if (cause === 'weights') {
    return `lower the learning rate (now ${o.lr}): Adam moves every weight by about the learning rate per update, whatever the gradient clipping`;
  }
  const tries = [`lower the learning rate (now ${o.lr})`];
  if (!o.maxGradNorm) tries.push('set maxGradNorm (e.g. 1)');
  if (!o.warmup) tries.push('add warmup steps');
  const clipped = o.maxGradNorm ? `; gradients were already clipped to maxGradNorm ${o.maxGradNorm}` : '';
  return `${tries.length > 1 ? `${tries.slice(0, -1).join(', ')} or ${tries[tries.length - 1]}` : tries[0]}${clipped}`;
}

/** Train; see {@link TrainOptions}. Resolves when done or interrupted; throws UserError on NaN/Inf. */
export async function train<B>(o: TrainOptions<B>): Promise<TrainResult> {
  validate(o);
  await initBackend();
  const accum = o.gradAccumulation ?? 1;
  const logEvery = o.logEvery ?? 10;
  const schedule: ScheduleConfig = { ...o.schedule, totalSteps: o.schedule.totalSteps ?? o.steps };
  const countTokens = o.countTokens ?? defaultCountTokens;
  const byVarName = new Map(o.params.map(([n, v]) => [v.name, n]));
  const varList = o.params.map(([, v]) => v);
  const opt = new AdamW(o.params, o.optimizer);
  const rng = new Rng(o.seed ?? 0);
  const metrics = o.metricsFile ? new MetricsWriter(o.metricsFile) : undefined;
  const isLogged = (r: MetricRecord): boolean => r.type === 'eval' || r.step % logEvery === 0 || r.step === o.steps;

  let step = 0;
  let log: MetricRecord[] = [];
  let lastCheckpoint: string | undefined;
  let savedAt = -1;

  try {
    if (o.resumeFrom || o.resume) {
      const found = o.resumeFrom ?? (await loadLatestCheckpoint(o.checkpointDir!));
      if (!found) throw new UserError(`${o.checkpointDir}: no complete checkpoint to resume from`);
      restore(found.data, found.path, o.params, opt, rng, o.data);
      step = found.data.step;
      log = found.data.log;
      lastCheckpoint = found.path;
      savedAt = step;
      metrics?.reset(log.filter(isLogged));
    } else if (metrics) {
      metrics.reset([]);
    }
    const resumedFrom = step;
    // Per-variable bound on |value| (see TrainOptions.weightLimit), from the starting values.
    const floor = o.weightLimit === false ? undefined : (o.weightLimit ?? WEIGHT_LIMIT);
    const limits = floor === undefined ? undefined : maxAbs(varList).map((m) => Math.max(floor, 10 * m));
    const advise = { lr: o.schedule.lr, maxGradNorm: o.maxGradNorm, warmup: o.schedule.warmupSteps };
    const kept = (): string => (lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint}` : 'no checkpoint was written yet');

    const save = async (): Promise<void> => {
      if (!o.checkpointDir || savedAt === step) return;
      const data: CheckpointData = {
        step,
        params: new Map(o.params.map(([n, v]) => [n, hostTensor(v)])),
        optimizer: opt.exportState(),
        rngState: rng.getState(),
        dataState: o.data.getState(),
        log,
        info: { ...o.info, steps: o.steps, seed: o.seed ?? 0, gradAccumulation: accum },
      };
      lastCheckpoint = await saveCheckpoint(o.checkpointDir, data, o.keepCheckpoints ?? 3);
      savedAt = step;
    };
    const emit = (r: MetricRecord): void => {
      log.push(r);
      if (isLogged(r)) {
        metrics?.write(r);
        o.onLog?.(r);
      }
    };

    const t0 = performance.now();
    let sessionTokens = 0;
    while (step < o.steps) {
      const s = step + 1;
      const lr = lrAt(s, schedule);
      const { grads, loss, tokens } = accumulate(o, accum, rng, varList, byVarName, countTokens);
      let gradNorm: number;
      try {
        gradNorm = globalNorm([...grads.values()]);
        if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
          const what = !Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${gradNorm}`;
          throw new UserError(
            `training diverged at step ${s}: ${what}; the update was not applied and ${kept()}; ${divergenceAdvice(s, 'non-finite', advise)}`,
          );
        }
        opt.update(grads, lr, clipCoefficient(gradNorm, o.maxGradNorm));
      } finally {
        for (const g of grads.values()) g.dispose();
      }
      if (limits) {
        const m = maxAbs(varList);
        const i = m.findIndex((x, k) => !(x <= limits[k]));
        if (i >= 0) {
          const fmt = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : String(x));
          throw new UserError(
            `training diverged at step ${s}: weights of "${o.params[i][0]}" reached ${fmt(m[i])} in magnitude (limit ${fmt(limits[i])}) ` +
              `while the loss is ${loss.toFixed(4)}; ${kept()}; ${divergenceAdvice(s, 'weights', advise)}`,
          );
        }
      }
      step = s;
      sessionTokens += tokens;
      const elapsedSec = (performance.now() - t0) / 1000;
      const rec: TrainRecord = {
        type: 'train',
        step,
        loss,
        lr,
        gradNorm,
        tokens,
        elapsedSec,
        tokensPerSec: elapsedSec > 0 ? sessionTokens / elapsedSec : 0,
      };
      emit(rec);
      o.onStep?.(rec, o.steps);
      if (o.evalFn && o.evalEvery && (step % o.evalEvery === 0 || step === o.steps)) {
        const ev: EvalRecord = { type: 'eval', step, metrics: await o.evalFn(step) };
        emit(ev);
      }
      if (o.checkpointDir && ((o.checkpointEvery && step % o.checkpointEvery === 0) || step === o.steps)) {
        await save();
      }
      // Let signal handlers run (Ctrl-C), then honour an abort after a whole update.
      await new Promise<void>((r) => setImmediate(r));
      if (o.signal?.aborted && step < o.steps) {
        await save();
        return { step, stopped: 'interrupted', log, lastCheckpoint, resumedFrom };
      }
    }
    return { step, stopped: 'completed', log, lastCheckpoint, resumedFrom };
  } finally {
    opt.dispose();
  }
}

/** Run `accum` micro-batches; returns the averaged gradients (caller disposes) and mean loss. */
function accumulate<B>(
  o: TrainOptions<B>,
  accum: number,
  rng: Rng,
  varList: tf.Variable[],
  byVarName: Map<string, string>,
  countTokens: (b: B) => number,
): { grads: Map<string, tf.Tensor>; loss: number; tokens: number } {
  const sum = new Map<string, tf.Tensor>();
  let lossSum = 0;
  let weightSum = 0;
  let tokens = 0;
  try {
    for (let i = 0; i < accum; i++) {
      const batch = o.data.next();
      tokens += countTokens(batch);
      const w = o.microBatchWeight ? o.microBatchWeight(batch) : 1;
      if (!(w >= 0) || !Number.isFinite(w)) throw new Error(`microBatchWeight returned ${w}`);
      const ctx: ForwardContext = { training: true, seed: rng.nextU32(), auxLosses: [] };
      let out: { value: tf.Scalar; grads: tf.NamedTensorMap };
      try {
        out = tf.variableGrads(() => {
          const main = o.lossFn(batch, ctx);
          return ctx.auxLosses.length ? tf.addN([main, ...ctx.auxLosses]) as tf.Scalar : main;
        }, varList);
      } finally {
        // Adapters may tf.keep() their aux losses so they outlive inner tidies: free them here.
        for (const a of ctx.auxLosses) a.dispose();
      }
      const { value, grads } = out;
      lossSum += w * value.dataSync()[0];
      weightSum += w;
      value.dispose();
      for (const [vName, g] of Object.entries(grads)) {
        const name = byVarName.get(vName);
        if (name === undefined) {
          g.dispose();
          continue;
        }
        const weighted = w === 1 ? g : tf.tidy(() => g.mul(w));
        if (weighted !== g) g.dispose();
        const prev = sum.get(name);
        if (prev) {
          sum.set(name, tf.add(prev, weighted));
          prev.dispose();
          weighted.dispose();
        } else {
          sum.set(name, weighted);
        }
      }
    }
    // Parameters the loss does not reach get zero gradients (AdamW still decays them).
    for (const [name, v] of o.params) if (!sum.has(name)) sum.set(name, tf.zerosLike(v));
    if (weightSum === 0) throw new UserError('every micro-batch of this update has weight 0 (no target tokens?)');
    if (weightSum !== 1) {
      for (const [name, g] of sum) {
        sum.set(name, tf.tidy(() => g.div(weightSum)));
        g.dispose();
      }
    }
    return { grads: sum, loss: lossSum / weightSum, tokens };
  } catch (e) {
    for (const g of sum.values()) g.dispose();
    throw e;
  }
}

/** Put a checkpoint's state back into the params, optimizer, RNG and data iterator. */
function restore<B>(
  data: CheckpointData,
  where: string,
  params: readonly [string, tf.Variable][],
  opt: AdamW,
  rng: Rng,
  iter: ResumableIterator<B>,
): void {
  const file = path.join(where, 'params.safetensors');
  const names = new Set(params.map(([n]) => n));
  for (const n of data.params.keys()) {
    if (!names.has(n)) throw new UserError(`${file}: tensor "${n}" is not a trainable parameter of this run`);
  }
  for (const [n, v] of params) {
    const t = data.params.get(n);
    if (!t) throw new UserError(`${file}: missing trainable parameter "${n}"`);
    if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      throw new UserError(`${file}: "${n}" has shape [${t.shape}], the model has [${v.shape}]`);
    }
  }
  for (const [n, v] of params) {
    const t = data.params.get(n)!;
    tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, v.shape, 'float32')));
  }
  opt.importState(data.optimizer);
  rng.setState(data.rngState);
  iter.setState(data.dataState);
}
