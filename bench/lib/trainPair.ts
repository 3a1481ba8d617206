/**
 * MoR's training step against LoRA's, paired in ONE process (`trainPair.ts MODEL_DIR`), for
 * `npm run bench:train`: the checkpoint is loaded twice, LoRA goes on one copy and MoR on the
 * other (the adapters of bench/lib/trainRun.ts), and the project's trainer runs both at once.
 * The trainer yields to the event loop after every update, so the two loops take turns:
 * LoRA's step, MoR's step, LoRA's, ... Each step is timed from its first loss call to its
 * `onStep` (forward, backward, gradient norm, AdamW, weight check), so a step never includes the
 * other's. The ratio of two steps seconds apart is much less exposed to this machine's drifts
 * than the ratio of medians taken in separate processes minutes apart (measured: those moved
 * from 0.91 to 1.99 between rounds of one run, while the steps paired here stayed within 1.0-1.3).
 *
 * Prints one JSON line: the step times of each (after BENCH_WARMUP untimed updates each) and the
 * ratio of each pair. Env: BENCH_PAIRS (12), BENCH_WARMUP (3), BENCH_BATCH, BENCH_SEQ, BENCH_R, BENCH_N.
 */
import { initBackend } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { parseAdapterConfig } from '../../src/adapters/config.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { train } from '../../src/train/trainer.ts';
import { batchLoss } from '../../src/train/batchLoss.ts';
import type { Batch } from '../../src/data/batch.ts';
import { benchAdapter, benchBatch, fixedBatches } from './trainSetup.ts';

/** What the paired run reports. */
export interface TrainPairResult {
  loraS: number[];
  morS: number[];
  /** MoR's step over LoRA's, pair by pair (step i of each). */
  ratios: number[];
  /** Whether the steps did take turns (each MoR step between LoRA's step of its pair and the next). */
  alternated: boolean;
}

async function main(dir: string): Promise<TrainPairResult> {
  const batch = Number(process.env.BENCH_BATCH ?? 4);
  const seq = Number(process.env.BENCH_SEQ ?? 256);
  const pairs = Number(process.env.BENCH_PAIRS ?? 12);
  const warmup = Number(process.env.BENCH_WARMUP ?? 3);
  if (!Number.isInteger(pairs) || pairs < 1) throw new Error(`BENCH_PAIRS must be a positive integer, got ${process.env.BENCH_PAIRS}`);
  const r = Number(process.env.BENCH_R ?? 32);
  const n = Number(process.env.BENCH_N ?? 8);
  await initBackend({ announce: false });
  // Both models ready before either trains, so that the two loops take turns from the first step.
  const prepare = async (kind: 'lora' | 'mor') => {
    const model = await loadModel(dir);
    return { model, peft: getPeftModel(model, parseAdapterConfig(benchAdapter(kind, r, n))) };
  };
  const sides = [await prepare('lora'), await prepare('mor')];
  const data: Batch = benchBatch(batch, seq, sides[0].model.config.vocabSize);
  const run = async ({ model, peft }: (typeof sides)[number]): Promise<{ times: number[]; starts: number[] }> => {
    const times: number[] = [];
    const starts: number[] = [];
    let started = 0;
    await train({
      params: peft.trainableParameters(), steps: warmup + pairs, schedule: { lr: 1e-4, kind: 'constant' }, optimizer: { weightDecay: 0.01 },
      data: fixedBatches(data), logEvery: 1,
      lossFn: (b, ctx) => {
        started = performance.now();
        return batchLoss(model, b, ctx, 'mean');
      },
      onStep: () => {
        times.push((performance.now() - started) / 1000);
        starts.push(started);
      },
    });
    return { times: times.slice(warmup), starts: starts.slice(warmup) };
  };
  let lora: Awaited<ReturnType<typeof run>>;
  let mor: Awaited<ReturnType<typeof run>>;
  try {
    [lora, mor] = await Promise.all(sides.map(run));
  } finally {
    for (const s of sides) s.peft.dispose();
  }
  const alternated = mor.starts.every((t, i) => t > lora.starts[i] && (i + 1 >= lora.starts.length || t < lora.starts[i + 1]));
  const [loraS, morS] = [lora.times, mor.times];
  return { loraS, morS, ratios: morS.map((m, i) => m / loraS[i]), alternated };
}

const [dir] = process.argv.slice(2);
main(dir).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => console.log(JSON.stringify({ error: e instanceof Error ? e.message : String(e) })),
);
