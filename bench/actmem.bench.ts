/**
 * `node --import tsx bench/actmem.bench.ts`: one MoR training step (r 8, N 8 on gate/up/down,
 * tf.variableGrads of the causal-LM loss with every position labelled) on a random
 * SmolLM-135M-shaped model (or BENCH_SHAPE=tiny), for gradient checkpointing off/on and loss
 * chunk sizes (0 = full logits). Reports the step time (best of BENCH_REPS, the variants
 * interleaved so machine load hits them alike) and the tensor bytes held for the backward at
 * the end of the forward (tf.memory().numBytes, the activations the tape keeps).
 *
 * Env: BENCH_REPS (default 3), BENCH_BATCH (4), BENCH_SEQ (256), BENCH_CHUNKS (`0,85,256`).
 */
import { initBackend, tf } from '../src/backend/tf.ts';
import { makeConfig } from '../src/models/llama/config.ts';
import { createRandomModel } from '../src/models/random.ts';
import { getPeftModel } from '../src/adapters/inject.ts';
import type { ForwardContext } from '../src/nn/context.ts';
import { fmt, formatTable } from './lib/timing.ts';
import { minOf } from '../src/util/array.ts';

const REPS = Number(process.env.BENCH_REPS ?? 3);
const BATCH = Number(process.env.BENCH_BATCH ?? 4);
const SEQ = Number(process.env.BENCH_SEQ ?? 256);
const CHUNKS = (process.env.BENCH_CHUNKS ?? '0,85,256').split(',').map(Number);

const info = await initBackend({ announce: false });
const shapes = {
  smollm: { vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9, numKeyValueHeads: 3, tieWordEmbeddings: true },
  tiny: { vocabSize: 2048, hiddenSize: 128, intermediateSize: 256, numHiddenLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: true },
};
const shapeName = (process.env.BENCH_SHAPE ?? 'smollm') as keyof typeof shapes;
const config = makeConfig(shapes[shapeName]);
const peft = getPeftModel(createRandomModel(config, 0), { kind: 'mor', r: 8, numExperts: 8, targetModules: ['gate_proj', 'up_proj', 'down_proj'], seed: 0 });
const vars = peft.trainableParameters().map(([, v]) => v);
const ids = tf.randomUniform([BATCH, SEQ], 0, config.vocabSize, 'int32') as tf.Tensor2D;

interface Variant { name: string; ckpt: boolean; chunk: number; times: number[]; held: number }
const variants: Variant[] = [];
for (const ckpt of [false, true]) for (const chunk of CHUNKS) variants.push({ name: `ckpt ${ckpt ? 'on' : 'off'}, chunk ${chunk || 'off'}`, ckpt, chunk, times: [], held: 0 });

function stepOnce(v: Variant): void {
  const ctx: ForwardContext = { training: true, seed: 1, auxLosses: [] };
  const before = tf.memory().numBytes;
  const t0 = performance.now();
  const { value, grads } = tf.variableGrads(() => {
    const l = peft.model.loss(ids, ids, { ctx, gradientCheckpointing: v.ckpt, lossChunkSize: v.chunk });
    v.held = tf.memory().numBytes - before;
    return l;
  }, vars);
  value.dataSync();
  v.times.push(performance.now() - t0);
  tf.dispose([value, ...Object.values(grads), ...ctx.auxLosses]);
}

stepOnce(variants[0]); // warm-up
variants[0].times = [];
for (let r = 0; r < REPS; r++) for (const v of variants) stepOnce(v);
const base = minOf(variants[0].times);
const rows = variants.map((v) => {
  const best = minOf(v.times);
  return [v.name, fmt(best / 1000, 2), fmt(best / base, 2), fmt(v.held / 2 ** 20, 1)];
});
process.stdout.write(`${shapeName}-shaped, MoR r8 N8 gate/up/down, ${BATCH}x${SEQ}, matmul ${info.matmulPath} (${info.threads} thr), best of ${REPS}\n`);
process.stdout.write(formatTable(['variant', 'step s', 'vs first', 'MiB held after forward'], rows) + '\n');
ids.dispose();
peft.dispose();
