/**
 * One side of `npm run bench:big` (bench/big.bench.ts), run in its own process: load the
 * checkpoint in argv[2], time a forward, a MoR training step and greedy generation, then (unless
 * BENCH_MERGE=0) merge a LoRA r=8 adapter on gate/up/down into bf16 shards with `mergeAdapter`
 * (the model is disposed first); print one JSON line ({@link BigResult}) with the peak RSS.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mergeAdapter } from '../../src/merge/mergeAdapter.ts';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel, weightPlacement } from '../../src/models/load.ts';
import { parseAdapterConfig } from '../../src/adapters/config.ts';
import { checkpointedLayers } from '../../src/models/memoryPlan.ts';
import { sizeTrainingRun } from '../../src/train/memory.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { generate } from '../../src/generate/generate.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { peakRssGiB } from './child.ts';

/** What one side reports (all times in seconds; an error instead when it failed). */
export interface BigResult {
  loadS?: number;
  peakRssGiB?: number;
  forwardTokS?: number;
  trainStepS?: number;
  trainTokS?: number;
  /** Decoder layers recomputed in the backward (the size policy's choice; ours only). */
  checkpointedLayers?: number;
  generateTokS?: number;
  /** `mor merge` of a LoRA adapter into bf16 shards, after the model was disposed. */
  mergeS?: number;
  error?: string;
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

async function main(dir: string): Promise<BigResult> {
  const seq = Number(process.env.BENCH_SEQ ?? 512);
  const batch = Number(process.env.BENCH_BATCH ?? 1);
  const newTokens = Number(process.env.BENCH_NEW ?? 8);
  await initBackend({ announce: false });
  let t0 = performance.now();
  const model = await loadModel(dir);
  const loadS = seconds(t0);
  const vocab = model.config.vocabSize;
  const ids = tf.tensor2d(Array.from({ length: seq }, (_, i) => (i * 7919 + 13) % vocab), [1, seq], 'int32');
  process.stderr.write(`  loaded in ${loadS.toFixed(1)} s\n`);

  tf.tidy(() => void model.forward(ids.slice([0, 0], [1, 8])).dataSync()); // warm-up
  t0 = performance.now();
  tf.tidy(() => void model.forward(ids).dataSync());
  const forwardTokS = seq / seconds(t0);
  process.stderr.write(`  forward ${forwardTokS.toFixed(1)} tokens/s\n`);

  const adapter = parseAdapterConfig({ kind: 'mor', r: 8, numExperts: 8, targetModules: ['gate_proj', 'up_proj', 'down_proj'] });
  // Sized by `mor train`'s policy: checkpointing of as few layers as the plan says are needed.
  const { gradientCheckpointing } = sizeTrainingRun({ batchSize: batch, maxLength: seq, adapter, gradientCheckpointing: 'auto' }, model.config, weightPlacement(dir));
  const ckptLayers = checkpointedLayers({ model: model.config, gradientCheckpointing });
  const ckptText = ckptLayers === 0 ? 'off' : `${ckptLayers} of ${model.config.numHiddenLayers} layers`;
  process.stderr.write(`  training ${batch} x ${seq}, gradient checkpointing ${ckptText}\n`);
  const peft = getPeftModel(model, adapter);
  const params = peft.trainableParameters();
  const opt = new AdamW(params);
  const batchIds = tf.tile(ids, [batch, 1]) as tf.Tensor2D;
  // BENCH_TRAIN_STEPS steps (default 2); the last one is reported: the first pays one-time costs
  // (the heap's growth, packed weight caches).
  let trainStepS = 0;
  for (let s = 0; s < Number(process.env.BENCH_TRAIN_STEPS ?? 2); s++) {
    t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => {
      const ctx: ForwardContext = { training: true, auxLosses: [], seed: 1 };
      return model.loss(batchIds, batchIds, { ctx, gradientCheckpointing });
    }, params.map(([, v]) => v));
    const byName = new Map(params.map(([k, v]) => [k, grads[v.name]] as [string, tf.Tensor]));
    opt.update(byName, 1e-4);
    value.dataSync();
    trainStepS = seconds(t0);
    tf.dispose([value, ...Object.values(grads)]);
  }
  batchIds.dispose();
  process.stderr.write(`  train step ${trainStepS.toFixed(1)} s\n`);

  const prompt = Array.from({ length: 16 }, (_, i) => (i * 31 + 7) % vocab);
  t0 = performance.now();
  const gen = await generate(model, null, prompt, { maxNewTokens: newTokens, temperature: 0, eosTokenIds: [] });
  const generateTokS = gen.tokenIds[0].length / seconds(t0);
  ids.dispose();
  peft.dispose();
  let mergeS: number | undefined;
  if (process.env.BENCH_MERGE !== '0') mergeS = await timeMerge(dir);
  return { loadS, peakRssGiB: peakRssGiB(), forwardTokS, trainStepS, trainTokS: (batch * seq) / trainStepS, checkpointedLayers: ckptLayers, generateTokS, mergeS };
}

/** Seconds of `mergeAdapter` for a random LoRA r=8 on gate/up/down, written as bf16 shards to a temp folder. */
async function timeMerge(dir: string): Promise<number> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-big-merge-'));
  try {
    const lora = getPeftModel(await loadModel(dir), { kind: 'lora', r: 8, init: false, seed: 1, targetModules: ['gate_proj', 'up_proj', 'down_proj'] });
    lora.savePretrained(path.join(tmp, 'adapter'));
    lora.dispose();
    const t0 = performance.now();
    await mergeAdapter({ model: dir, adapter: path.join(tmp, 'adapter'), out: path.join(tmp, 'merged'), dtype: 'BF16' });
    const s = seconds(t0);
    process.stderr.write(`  merge ${s.toFixed(1)} s\n`);
    return s;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main(process.argv[2]).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => {
    process.stderr.write(String(e instanceof Error ? e.stack : e) + '\n');
    console.log(JSON.stringify({ error: (e instanceof Error ? e.message : String(e)).split('\n')[0], peakRssGiB: peakRssGiB() }));
  },
);
