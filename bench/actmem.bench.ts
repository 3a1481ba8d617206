/**
 * `node --import tsx bench/actmem.bench.ts`: one MoR training step (r 8, N 8 on gate/up/down,
 * tf.variableGrads of the causal-LM loss with every position labelled) on a random
 * SmolLM-135M-shaped model (or BENCH_SHAPE=tiny), for gradient checkpointing off/on and loss
 * chunk sizes (0 = full logits). Each variant runs in its own process (a step that does not
 * fit the 4 GiB wasm heap aborts the process: reported as `crashed`), the variants
 * interleaved over BENCH_REPS rounds so machine load hits them alike; the second step of each
 * process is timed, the best over rounds kept.
 * Also prints the size policy's heap estimate for each variant (src/models/memoryPlan.ts).
 *
 * Env: BENCH_REPS (default 2), BENCH_BATCH (1), BENCH_SEQ (256), BENCH_CHUNKS (`0,85,341`).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initBackend, tf } from '../src/backend/tf.ts';
import { makeConfig } from '../src/models/llama/config.ts';
import { createRandomModel } from '../src/models/random.ts';
import { getPeftModel } from '../src/adapters/inject.ts';
import { parseAdapterConfig } from '../src/adapters/config.ts';
import { adapterTrainableParams, planRun } from '../src/models/memoryPlan.ts';
import type { ForwardContext } from '../src/nn/context.ts';
import { fmt, formatTable } from './lib/timing.ts';
import { minOf } from '../src/util/array.ts';

const REPS = Number(process.env.BENCH_REPS ?? 2);
const BATCH = Number(process.env.BENCH_BATCH ?? 1);
const SEQ = Number(process.env.BENCH_SEQ ?? 256);
const CHUNKS = (process.env.BENCH_CHUNKS ?? '0,85,341').split(',').map(Number);
const shapes = {
  smollm: { vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9, numKeyValueHeads: 3, tieWordEmbeddings: true },
  tiny: { vocabSize: 2048, hiddenSize: 128, intermediateSize: 256, numHiddenLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: true },
};
const shapeName = (process.env.BENCH_SHAPE ?? 'smollm') as keyof typeof shapes;
const config = makeConfig(shapes[shapeName]);
const adapter = parseAdapterConfig({ kind: 'mor', r: 8, numExperts: 8, targetModules: ['gate_proj', 'up_proj', 'down_proj'], seed: 0 });

interface Variant { ckpt: boolean; chunk: number }

/** Child: build the model, run one step to warm up, time the next; print `{ ms }`. */
async function child(v: Variant): Promise<void> {
  await initBackend({ announce: false });
  const peft = getPeftModel(createRandomModel(config, 0), adapter);
  const vars = peft.trainableParameters().map(([, p]) => p);
  const ids = tf.randomUniform([BATCH, SEQ], 0, config.vocabSize, 'int32') as tf.Tensor2D;
  const step = (x: tf.Tensor2D): number => {
    const ctx: ForwardContext = { training: true, seed: 1, auxLosses: [] };
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => peft.model.loss(x, x, { ctx, gradientCheckpointing: v.ckpt, lossChunkSize: v.chunk }), vars);
    value.dataSync();
    const ms = performance.now() - t0;
    tf.dispose([value, ...Object.values(grads), ...ctx.auxLosses]);
    return ms;
  };
  step(ids); // warm-up at full size: kernels, caches and the heap's growth happen here
  process.stdout.write(JSON.stringify({ ms: step(ids) }) + '\n');
}

if (process.env.BENCH_VARIANT) {
  await child(JSON.parse(process.env.BENCH_VARIANT));
} else {
  const variants: Variant[] = [];
  for (const ckpt of [false, true]) for (const chunk of CHUNKS) variants.push({ ckpt, chunk });
  const times = variants.map(() => [] as number[]);
  const crashed = variants.map(() => false);
  const self = fileURLToPath(import.meta.url);
  for (let r = 0; r < REPS; r++) {
    variants.forEach((v, i) => {
      if (crashed[i]) return;
      const out = spawnSync(process.execPath, ['--import', 'tsx', self], { env: { ...process.env, BENCH_VARIANT: JSON.stringify(v), MOR_QUIET: '1' }, encoding: 'utf8', maxBuffer: 1 << 26 });
      const line = out.stdout.trim().split('\n').pop() ?? '';
      if (out.status === 0 && line.startsWith('{')) times[i].push(JSON.parse(line).ms);
      else crashed[i] = true;
    });
  }
  const info = await initBackend({ announce: false });
  const trainable = adapterTrainableParams(config, adapter);
  const base = times[0].length ? minOf(times[0]) : undefined;
  const rows = variants.map((v, i) => {
    const plan = planRun({ model: config, batchSize: BATCH, maxLength: SEQ, trainableParams: trainable, gradientCheckpointing: v.ckpt, lossChunkRows: v.chunk, weightsOffHeap: false, fileDtypeBytes: 4 });
    const best = times[i].length ? minOf(times[i]) : undefined;
    return [
      `ckpt ${v.ckpt ? 'on' : 'off'}, chunk ${v.chunk || 'off'}`,
      crashed[i] ? 'crashed' : fmt(best! / 1000, 2),
      best !== undefined && base !== undefined ? fmt(best / base, 2) : '-',
      fmt(plan.heap.total / 2 ** 30, 2),
    ];
  });
  process.stdout.write(`${shapeName}-shaped, MoR r8 N8 gate/up/down, ${BATCH}x${SEQ}, matmul ${info.matmulPath} (${info.threads} thr), best of ${REPS}\n`);
  process.stdout.write(formatTable(['variant', 'step s', 'vs first', 'planned heap GiB'], rows) + '\n');
}
