import * as fs from 'node:fs'; import * as os from 'node:os'; import * as path from 'node:path';
import { initBackend, tf } from '/work/main/src/backend/tf.ts';
import { makeTinySetup } from '/work/main/test/fixtures/train/tinyLlama.ts';
import { Tokenizer } from '/work/main/src/tokenizer/tokenizer.ts';
import { getPeftModel } from '/work/main/src/adapters/peftModel.ts';
import { loadModel } from '/work/main/src/models/load.ts';
import { BatchStream, DataMixture } from '/work/main/src/data/mix.ts';
import { train } from '/work/main/src/train/trainer.ts';
import { batchLoss, batchTargets } from '/work/main/src/train/run.ts';
await initBackend({ announce: true });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'meas-'));
const { modelDir, shout, reverse } = await makeTinySetup(root);
const tok = Tokenizer.fromDir(modelDir);
const peft = getPeftModel(await loadModel(modelDir), { kind: 'mor', r: 4, numExperts: 2, routerMode: 'balanced', dropout: 0.1 });
const mix = await DataMixture.load([{ path: shout }, { path: reverse }], tok, { seed: 1, maxLength: 32 });
const stream = new BatchStream(mix, { batchSize: 2 });
const rss: number[] = []; const nt: number[] = [];
const t0 = performance.now();
await train({ params: peft.trainableParameters(), lossFn: (b: any, ctx) => batchLoss(peft.model, b, ctx), data: { next: () => stream.next(), getState: () => stream.state(), setState: (s: any) => stream.restore(s) },
  steps: 200, schedule: { lr: 1e-3 }, maxGradNorm: 1, microBatchWeight: batchTargets as any, checkpointDir: path.join(root, 'ck'), checkpointEvery: 50,
  onStep: (r) => { if (r.step % 50 === 0) { rss.push(process.memoryUsage().rss / 2 ** 20); nt.push(tf.memory().numTensors); } } });
console.log('ms/step', ((performance.now() - t0) / 200).toFixed(1), 'rss MiB at 50/100/150/200', rss.map((x) => x.toFixed(1)).join(' '), 'tensors', nt.join(' '));
fs.rmSync(root, { recursive: true, force: true });
