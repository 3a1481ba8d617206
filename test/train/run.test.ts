/**
 * End-to-end: a tiny random LLaMA with a freshly trained BPE tokenizer, MoR trained on a
 * two-task JSONL mix through runTraining; interrupt + resume equals the uninterrupted run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { makeTinySetup } from '../fixtures/train/tinyLlama.ts';
import { sampleMemory, type MemorySample } from '../fixtures/train/memory.ts';
import { parseTrainConfig } from '../../src/train/config.ts';
import { batchLoss, batchTargets, runTraining } from '../../src/train/run.ts';
import { train } from '../../src/train/trainer.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { loadModel } from '../../src/models/load.ts';
import { BatchStream, DataMixture, type BatchStreamState } from '../../src/data/mix.ts';
import type { Batch } from '../../src/data/batch.ts';
import { ProgressReporter } from '../../src/train/progress.ts';
import { readSafetensors } from '../../src/io/safetensors.ts';
import { readMetrics } from '../../src/train/metrics.ts';
import type { TrainRecord } from '../../src/train/metrics.ts';

await initBackend({ announce: false });

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-run-'));
const { modelDir, shout, reverse } = await makeTinySetup(root);

const config = (outDir: string): ReturnType<typeof parseTrainConfig> => parseTrainConfig({
  model: modelDir,
  adapter: { kind: 'mor', r: 4, alpha: 8, numExperts: 2 },
  data: [{ path: shout }, { path: reverse, weight: 1 }],
  evalData: [{ path: shout }],
  maxLength: 32, batchSize: 4, steps: 12, lr: 0.02, warmup: 2, seed: 1,
  outDir, checkpointEvery: 4, evalEvery: 6, logEvery: 3,
});

class Quiet extends ProgressReporter {
  constructor(private readonly onStep?: (step: number) => void) {
    super({ total: 12, stream: new Writable({ write: (_c, _e, cb) => cb() }), tty: false });
  }
  override step(r: TrainRecord): void {
    super.step(r);
    this.onStep?.(r.step);
  }
}

test('runTraining trains MoR on a two-task mix, writes metrics, plot, checkpoints and adapter; resume is exact', async () => {
  const tensorsBefore = tf.memory().numTensors;
  const lines: string[] = [];
  const a = await runTraining(config(path.join(root, 'a')), { progress: new Quiet(), log: (l) => lines.push(l) });
  assert.equal(a.stopped, 'completed');
  assert.equal(a.step, 12);
  const train = a.log.filter((r): r is TrainRecord => r.type === 'train').map((r) => r.loss);
  const evals = a.log.filter((r) => r.type === 'eval').map((r) => (r.type === 'eval' ? r.metrics.loss : NaN));
  assert.equal(evals.length, 2);
  assert.ok(evals[1] < evals[0], `eval loss ${evals}`);
  assert.ok(train.slice(-3).reduce((x, y) => x + y) < train.slice(0, 3).reduce((x, y) => x + y), `train loss ${train}`);
  assert.deepEqual(readMetrics(a.metricsFile).map((r) => `${r.type}${r.step}`), ['train3', 'train6', 'eval6', 'train9', 'train12', 'eval12']);
  assert.match(fs.readFileSync(a.lossPlot, 'utf8'), /^<svg[\s\S]*<\/svg>$/);
  const adapter = readSafetensors(path.join(a.adapterDir!, 'adapter_model.safetensors')).tensors;
  assert.ok([...adapter.keys()].some((k) => k.includes('mor_omega_A')));
  assert.ok(fs.existsSync(path.join(a.adapterDir!, 'adapter_config.json')));
  assert.ok(lines.some((l) => l.startsWith('trainable params: ')));
  const svg = fs.readFileSync(a.routingPlot!, 'utf8');
  for (const label of ['shout', 'reverse', 'layers.0.mlp.up_proj', 'layers.1.mlp.down_proj']) assert.ok(svg.includes(`>${label}</text>`), label);
  const routing = JSON.parse(fs.readFileSync(path.join(root, 'a', 'routing.json'), 'utf8')) as Record<string, Record<string, { tokens: number; mean: number[] }>>;
  assert.equal(Object.keys(routing).length, 2 * 3); // 2 layers x gate/up/down
  for (const byTask of Object.values(routing)) {
    assert.deepEqual(Object.keys(byTask).sort(), ['reverse', 'shout']);
    for (const { mean } of Object.values(byTask)) assert.ok(Math.abs(mean[0] + mean[1] - 1) < 1e-5);
  }
  assert.equal(tf.memory().numTensors, tensorsBefore);

  // Interrupted at step 5 (checkpoint saved there), then resumed: same losses, same adapter.
  const ac = new AbortController();
  const b1 = await runTraining(config(path.join(root, 'b')), {
    progress: new Quiet((s) => { if (s === 5) ac.abort(); }), signal: ac.signal, log: () => {},
  });
  assert.equal(b1.stopped, 'interrupted');
  assert.equal(b1.adapterDir, undefined);
  const b2 = await runTraining(config(path.join(root, 'b')), { resume: true, progress: new Quiet(), log: () => {} });
  assert.equal(b2.resumedFrom, 5);
  assert.deepEqual(b2.log.map((r) => (r.type === 'train' ? r.loss : r.metrics.loss)), a.log.map((r) => (r.type === 'train' ? r.loss : r.metrics.loss)));
  const adapterB = readSafetensors(path.join(b2.adapterDir!, 'adapter_model.safetensors')).tensors;
  assert.deepEqual([...adapterB.keys()], [...adapter.keys()]);
  for (const [k, t] of adapter) assert.deepEqual(adapterB.get(k)!.data, t.data, k);
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));

test('tiny LLaMA + MoR (balanced router, aux loss) through the trainer: tensor count and RSS flat over 200 steps', async () => {
  const tok = Tokenizer.fromDir(modelDir);
  // Counted before the model exists: on the pure-wasm path its projections keep a Wᵀ from the
  // first step on, which dispose() frees.
  const before = tf.memory().numTensors;
  const peft = getPeftModel(await loadModel(modelDir), { kind: 'mor', r: 4, numExperts: 2, routerMode: 'balanced', dropout: 0.1 });
  const mixture = await DataMixture.load([{ path: shout }, { path: reverse }], tok, { seed: 1, maxLength: 32 });
  const stream = new BatchStream(mixture, { batchSize: 2 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-run-mem-'));
  const counts = new Map<number, number>();
  const mem = new Map<number, MemorySample>();
  await train<Batch>({
    params: peft.trainableParameters(),
    lossFn: (b, ctx) => batchLoss(peft.model, b, ctx),
    data: { next: () => stream.next(), getState: () => stream.state(), setState: (s) => stream.restore(s as BatchStreamState) },
    steps: 200, schedule: { lr: 1e-3 }, maxGradNorm: 1, microBatchWeight: batchTargets,
    checkpointDir: dir, checkpointEvery: 50,
    onStep: (r) => {
      if (r.step % 20 === 0) {
        counts.set(r.step, tf.memory().numTensors);
        mem.set(r.step, sampleMemory());
      }
    },
  });
  assert.equal(counts.get(200), counts.get(20));
  const heapGrow = mem.get(200)!.heapMb - mem.get(60)!.heapMb;
  const rssGrow = mem.get(200)!.rssMb - mem.get(60)!.rssMb;
  assert.ok(heapGrow < 4, `heap after GC grew ${heapGrow.toFixed(2)} MiB between steps 60 and 200`);
  assert.ok(rssGrow < 32, `RSS grew ${rssGrow.toFixed(1)} MiB between steps 60 and 200`);
  peft.dispose();
  assert.equal(tf.memory().numTensors, before);
  fs.rmSync(dir, { recursive: true, force: true });
});
