/** KV-cache decoding gives the same logits as a full forward at every step (<= 1e-4). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { KVCache } from '../../src/models/llama/kvCache.ts';

await initBackend();

// GQA 4:2, untied; a large init so logits differ clearly between positions.
const config = makeConfig({
  vocabSize: 40, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4,
  numKeyValueHeads: 2, initializerRange: 0.3, ropeScaling: { type: 'linear', factor: 2 },
});
const model = createRandomModel(config, 7);

function row(logits: tf.Tensor, b: number, t: number): Float32Array {
  const [, nt, v] = logits.shape;
  return (logits.dataSync() as Float32Array).slice((b * nt + t) * v, (b * nt + t + 1) * v);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('prefill + one-token steps equal the full forward at every step', () => {
  tf.tidy(() => void model.forward(tf.tensor2d([[1]], undefined, 'int32'))); // warm-up (W^T caches on pure wasm)
  const before = tf.memory().numTensors;
  tf.engine().startScope(); // disposes the inline input tensors at endScope
  const ids = [[5, 9, 3, 17, 22, 8, 30, 1, 11, 4]];
  const full = model.forward(tf.tensor2d(ids, undefined, 'int32'));
  const cache = new KVCache(config.numHiddenLayers);
  const pre = model.forward(tf.tensor2d([ids[0].slice(0, 4)], undefined, 'int32'), { cache });
  for (let t = 0; t < 4; t++) assert.ok(maxDiff(row(pre, 0, t), row(full, 0, t)) <= 1e-4);
  let spread = 0;
  for (let t = 4; t < 10; t++) {
    const step = model.forward(tf.tensor2d([[ids[0][t]]], undefined, 'int32'), { cache });
    assert.equal(cache.seqLen, t + 1);
    const d = maxDiff(row(step, 0, 0), row(full, 0, t));
    assert.ok(d <= 1e-4, `step ${t}: ${d}`);
    spread = Math.max(spread, maxDiff(row(full, 0, t), row(full, 0, t - 1)));
    step.dispose();
  }
  assert.ok(spread > 0.1, 'positions must give different logits for the check to mean something');
  tf.dispose([full, pre]);
  cache.dispose();
  tf.engine().endScope();
  assert.equal(tf.memory().numTensors, before, 'cache or forward leaked tensors');
});

test('multi-token chunks after a prefix (causal offset) equal the full forward', () => {
  const ids = [3, 4, 5, 6, 7, 8, 9, 10, 11];
  const full = model.forward(tf.tensor2d([ids], undefined, 'int32'));
  const cache = new KVCache(config.numHiddenLayers);
  const chunks = [ids.slice(0, 3), ids.slice(3, 7), ids.slice(7)];
  let t0 = 0;
  for (const ch of chunks) {
    const out = model.forward(tf.tensor2d([ch], undefined, 'int32'), { cache });
    for (let t = 0; t < ch.length; t++) assert.ok(maxDiff(row(out, 0, t), row(full, 0, t0 + t)) <= 1e-4);
    t0 += ch.length;
    out.dispose();
  }
  cache.dispose();
  full.dispose();
});

test('left-padded batch: cached steps equal the full masked forward, and padding changes nothing', () => {
  const a = [5, 9, 3, 17, 22, 8, 30, 1];
  const b = [12, 6, 2, 25, 8]; // left-padded by 3
  const ids = [a, [0, 0, 0, ...b]];
  const mask = [a.map(() => 1), [0, 0, 0, 1, 1, 1, 1, 1]];
  const full = model.forward(tf.tensor2d(ids, undefined, 'int32'), { attentionMask: tf.tensor2d(mask, undefined, 'int32') });
  const alone = model.forward(tf.tensor2d([b], undefined, 'int32'));
  for (let t = 0; t < b.length; t++) assert.ok(maxDiff(row(full, 1, t + 3), row(alone, 0, t)) <= 1e-4, `padding changed t=${t}`);
  const cache = new KVCache(config.numHiddenLayers);
  const p = 5;
  const pre = model.forward(tf.tensor2d(ids.map((r) => r.slice(0, p)), undefined, 'int32'), {
    cache, attentionMask: tf.tensor2d(mask.map((r) => r.slice(0, p)), undefined, 'int32'),
  });
  for (let t = 3; t < p; t++) assert.ok(maxDiff(row(pre, 1, t), row(full, 1, t)) <= 1e-4);
  pre.dispose();
  for (let t = p; t < 8; t++) {
    const step = model.forward(tf.tensor2d(ids.map((r) => [r[t]]), undefined, 'int32'), {
      cache, attentionMask: tf.tensor2d(mask.map((r) => r.slice(0, t + 1)), undefined, 'int32'),
    });
    for (const bi of [0, 1]) {
      const d = maxDiff(row(step, bi, 0), row(full, bi, t));
      assert.ok(d <= 1e-4, `row ${bi} step ${t}: ${d}`);
    }
    step.dispose();
  }
  cache.dispose();
  tf.dispose([full, alone]);
});

test('KVCache.dispose frees every cached tensor', () => {
  const before = tf.memory().numTensors;
  const cache = new KVCache(config.numHiddenLayers);
  const ids = tf.tensor2d([[1, 2, 3]], undefined, 'int32');
  model.forward(ids, { cache }).dispose();
  const one = ids.slice([0, 0], [1, 1]);
  model.forward(one, { cache }).dispose();
  // ids, one, and keys + values per layer
  assert.equal(tf.memory().numTensors, before + 2 + 2 * config.numHiddenLayers);
  assert.equal(cache.seqLen, 4);
  cache.dispose();
  assert.equal(cache.seqLen, 0);
  tf.dispose([ids, one]);
  assert.equal(tf.memory().numTensors, before);
});

test('KVCache.updateTokens appends on the positions axis of [B, T, Hkv, D], trims to the window, and keeps one layout', () => {
  const before = tf.memory().numTensors;
  const cache = new KVCache(1, [3]); // a window of 3: the next query needs the last 2 positions
  // Position p of head h holds 10 * p + h, so the held slice says which positions were kept.
  const step = (p0: number, t: number) => tf.tensor4d(Array.from({ length: t * 2 }, (_, i) => 10 * (p0 + Math.floor(i / 2)) + (i % 2)), [1, t, 2, 1]);
  tf.tidy(() => {
    const { k } = cache.updateTokens(0, step(0, 2), step(0, 2));
    assert.deepEqual(k.shape, [1, 2, 2, 1]);
  });
  tf.tidy(() => {
    const { k, v } = cache.updateTokens(0, step(2, 1), step(2, 1));
    assert.deepEqual(Array.from(k.dataSync()), [0, 1, 10, 11, 20, 21]); // what this step attends to
    assert.deepEqual(v.shape, [1, 3, 2, 1]);
  });
  assert.equal(cache.seqLen, 3);
  assert.equal(cache.heldLength(0), 2);
  assert.equal(cache.dropped(0), 1);
  assert.throws(() => tf.tidy(() => cache.update(0, tf.zeros([1, 2, 1, 1]), tf.zeros([1, 2, 1, 1]))), /axis 1/);
  cache.dispose();
  assert.equal(tf.memory().numTensors, before);
});
