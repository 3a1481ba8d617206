/**
 * One side of `npm run bench:big` (bench/big.bench.ts), run in its own process: load the
 * checkpoint in argv[2], time a forward, a MoR training step and greedy generation, and print
 * one JSON line ({@link BigResult}) with the peak RSS of this process.
 */
import * as fs from 'node:fs';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { generate } from '../../src/generate/generate.ts';
import type { ForwardContext } from '../../src/nn/context.ts';

/** What one side reports (all times in seconds; an error instead when it failed). */
export interface BigResult {
  loadS?: number;
  peakRssGiB?: number;
  forwardTokS?: number;
  trainStepS?: number;
  trainTokS?: number;
  generateTokS?: number;
  error?: string;
}

/** Peak resident set size of this process (VmHWM), GiB. */
function peakRssGiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 2 ** 20 : NaN;
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

async function main(dir: string): Promise<BigResult> {
  const seq = Number(process.env.BENCH_SEQ ?? 512);
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

  const peft = getPeftModel(model, { kind: 'mor', r: 8, numExperts: 8, targetModules: ['gate_proj', 'up_proj', 'down_proj'] });
  const params = peft.trainableParameters();
  const opt = new AdamW(params);
  t0 = performance.now();
  const { value, grads } = tf.variableGrads(() => {
    const ctx: ForwardContext = { training: true, auxLosses: [], seed: 1 };
    return model.loss(ids, ids, { ctx, gradientCheckpointing: true });
  }, params.map(([, v]) => v));
  const byName = new Map(params.map(([k, v]) => [k, grads[v.name]] as [string, tf.Tensor]));
  opt.update(byName, 1e-4);
  value.dataSync();
  const trainStepS = seconds(t0);
  tf.dispose([value, ...Object.values(grads)]);
  process.stderr.write(`  train step ${trainStepS.toFixed(1)} s\n`);

  const prompt = Array.from({ length: 16 }, (_, i) => (i * 31 + 7) % vocab);
  t0 = performance.now();
  const gen = await generate(model, null, prompt, { maxNewTokens: newTokens, temperature: 0, eosTokenIds: [] });
  const generateTokS = gen.tokenIds[0].length / seconds(t0);
  ids.dispose();
  return { loadS, peakRssGiB: peakRssGiB(), forwardTokS, trainStepS, trainTokS: seq / trainStepS, generateTokS };
}

main(process.argv[2]).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => {
    process.stderr.write(String(e instanceof Error ? e.stack : e) + '\n');
    console.log(JSON.stringify({ error: (e instanceof Error ? e.message : String(e)).split('\n')[0], peakRssGiB: peakRssGiB() }));
  },
);
