/**
 * Our side of `npm run bench:train` (bench/train.bench.ts), run in its own process:
 * `trainRun.ts MODEL_DIR KIND [--profile]`. Loads the checkpoint as `mor train` does, attaches
 * the adapter to gate/up/down (full: every linear layer of the decoder), and runs the project's
 * trainer (`train`, the loop behind `mor train`) for BENCH_WARMUP (3) untimed and BENCH_STEPS
 * timed updates: causal-LM loss over every position, backward, AdamW (lr 1e-4, weight decay
 * 0.01). Then more updates under the kernel profiler, which counts the step's matmul FLOPs
 * (and with --profile prints where the time went, on stderr). Prints one JSON line
 * ({@link TrainRunResult}). Env: BENCH_BATCH, BENCH_SEQ, BENCH_STEPS, BENCH_WARMUP, BENCH_R,
 * BENCH_N, BENCH_CKPT=1 (gradient checkpointing; `layers:N`: of the last N layers),
 * BENCH_PROFILE_STEPS (profiled updates, averaged; 3), BENCH_PROFILE_DETAIL=1 (adapter products
 * by shape, every element-wise and copy kernel on its own row).
 */
import { describeBackend, initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { parseAdapterConfig } from '../../src/adapters/config.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { train } from '../../src/train/trainer.ts';
import { batchLoss } from '../../src/train/batchLoss.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { matMul } from '../../src/backend/matmul.ts';
import { KernelProfile } from './kernelProfile.ts';
import { formatTable } from './timing.ts';
import { peakRssGiB } from './child.ts';
import { benchAdapter, benchBatch, fixedBatches } from './trainSetup.ts';

/** What our side reports. */
export interface TrainRunResult {
  stepS: number;
  stepsS: number[];
  tokS: number;
  losses: number[];
  trainableParams: number;
  peakRssGiB: number;
  /** Matmul FLOPs of one step, counted by the profiler. */
  stepGflop: number;
  /** GFLOP/s of the project's matmul on a large product in this process. */
  matmulGflops: number;
  matmulPath: string;
  threads: number;
  /** The start-up banner's description of the path (which sgemm, which OpenBLAS kernels, threads). */
  backend: string;
  error?: string;
}

/** BENCH_CKPT: 1 every layer, `layers:N` the last N layers, else off. */
function benchCheckpointing(): boolean | number {
  const v = process.env.BENCH_CKPT ?? '';
  if (v.startsWith('layers:')) return Number(v.slice(7));
  return v === '1';
}

/**
 * GFLOP/s of the project's matmul on [tokens, hidden] x [hidden, 4096], best of 6 after a
 * warm-up. Timed until the product exists on the heap (the wasm backend runs kernels
 * synchronously); reading it into JavaScript, a 16 MB copy, is not part of the product.
 */
function matmulRate(tokens: number, hidden: number): number {
  const a = tf.randomNormal([tokens, hidden]);
  const b = tf.randomNormal([hidden, 4096]);
  let best = Infinity;
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    const c = matMul(a, b);
    if (i > 0) best = Math.min(best, performance.now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  return (2 * tokens * hidden * 4096) / (best * 1e6);
}

async function main(dir: string, kind: string, profile: boolean): Promise<TrainRunResult> {
  const batch = Number(process.env.BENCH_BATCH ?? 4);
  const seq = Number(process.env.BENCH_SEQ ?? 256);
  const steps = Number(process.env.BENCH_STEPS ?? 3);
  // The first steps grow the wasm heap (fresh pages) until the allocator's free blocks fit the
  // step's tensors; the timed steps are the steady state, as on PyTorch's side. (MoR's heap grew
  // in its third step, 710 -> 847 MiB, until AdamW updated in place; three kept for both sides.)
  const warmup = Number(process.env.BENCH_WARMUP ?? 3);
  const r = Number(process.env.BENCH_R ?? 32);
  const n = Number(process.env.BENCH_N ?? 8);
  const info = await initBackend({ announce: false });
  const model = await loadModel(dir);
  const c = model.config;
  const peft = getPeftModel(model, parseAdapterConfig(benchAdapter(kind, r, n)));
  const params = peft.trainableParameters();
  const tokens = batch * seq;
  const data = benchBatch(batch, seq, c.vocabSize);
  const run = async (updates: number, onStep: () => void) => {
    const losses: number[] = [];
    await train({
      params, steps: updates, schedule: { lr: 1e-4, kind: 'constant' }, optimizer: { weightDecay: 0.01 },
      data: fixedBatches(data), lossFn: (b, ctx) => batchLoss(model, b, ctx, 'mean', { gradientCheckpointing: benchCheckpointing() }), logEvery: 1,
      onStep: (rec) => {
        losses.push(rec.loss);
        onStep();
      },
    });
    return losses;
  };

  // The matmul rate first, before the steps (measured after them, with the readback in the timing,
  // it varied from 78 to 449 GFLOP/s between processes of the same run).
  const matmulGflops = matmulRate(tokens, c.hiddenSize);
  const stamps: number[] = [performance.now()];
  const losses = await run(warmup + steps, () => stamps.push(performance.now()));
  const stepsS = stamps.slice(warmup + 1).map((t, i) => (t - stamps[warmup + i]) / 1000);
  const sorted = [...stepsS].sort((a, b) => a - b);
  const stepS = sorted[Math.floor((sorted.length - 1) / 2)];

  // More updates under the profiler, averaged: a first one outside it (a new train() call makes
  // AdamW's moments and checks the starting weights once), then BENCH_PROFILE_STEPS (3) profiled.
  // AdamW's update is timed as a whole (with the addon it is one native pass, no tfjs kernel).
  const profSteps = Number(process.env.BENCH_PROFILE_STEPS ?? 3);
  if (!Number.isInteger(profSteps) || profSteps < 1) throw new Error(`BENCH_PROFILE_STEPS must be a positive integer, got ${process.env.BENCH_PROFILE_STEPS}`);
  const prof = new KernelProfile({
    hidden: c.hiddenSize, intermediate: c.intermediateSize, qWidth: c.numAttentionHeads * c.headDim,
    kvWidth: c.numKeyValueHeads * c.headDim, headDim: c.headDim, vocab: c.vocabSize, tokens, seq,
  });
  const update = AdamW.prototype.update;
  AdamW.prototype.update = function (this: AdamW, grads: Parameters<AdamW['update']>[0], lr: number, gradScale?: number) {
    return prof.timed('optimizer (AdamW update)', () => update.call(this, grads, lr, gradScale));
  };
  let done = 0;
  let t0 = 0;
  let profiledMs = 0;
  await run(1 + profSteps, () => {
    done++;
    if (done === 1) {
      prof.start();
      t0 = performance.now();
    } else if (done === 1 + profSteps) {
      profiledMs = (performance.now() - t0) / profSteps;
      prof.stop();
    }
  });
  prof.uninstall();
  AdamW.prototype.update = update;
  const { rows, flops } = prof.table(profiledMs, profSteps);
  if (profile) {
    process.stderr.write(`\nprofile of a ${kind} step (${batch} x ${seq}), mean of ${profSteps}: ${(profiledMs / 1000).toFixed(2)} s under the profiler, ` +
      `${(flops / 1e9).toFixed(1)} GFLOP of matmuls\n` + formatTable(['work', 'ms', 'share', 'calls', 'GFLOP'], rows) + '\n');
  }
  peft.dispose();
  return {
    stepS, stepsS, tokS: tokens / stepS, losses, trainableParams: params.reduce((s, [, v]) => s + v.size, 0),
    peakRssGiB: peakRssGiB(), stepGflop: flops / 1e9, matmulGflops, matmulPath: info.matmulPath, threads: info.threads, backend: describeBackend(info),
  };
}

const [dir, kind] = process.argv.slice(2);
main(dir, kind, process.argv.includes('--profile')).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => {
    process.stderr.write(String(e instanceof Error ? e.stack : e) + '\n');
    console.log(JSON.stringify({ error: (e instanceof Error ? e.message : String(e)).split('\n')[0], peakRssGiB: peakRssGiB() }));
  },
);
