import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { clipByGlobalNorm, globalNorm } from '../../src/train/clip.ts';

await initBackend({ announce: false });

test('global norm and clipping like torch clip_grad_norm_', () => {
  const before = tf.memory().numTensors;
  const a = tf.tensor1d([3, 4]);
  const b = tf.tensor2d([[12]]);
  const grads = new Map<string, tf.Tensor>([['a', a], ['b', b]]);
  assert.ok(Math.abs(globalNorm([a, b]) - 13) < 1e-6);
  const r = clipByGlobalNorm(grads, 6.5);
  assert.equal(r.clipped, true);
  assert.ok(Math.abs(r.norm - 13) < 1e-6);
  const coef = 6.5 / (13 + 1e-6);
  const got = [...r.grads.get('a')!.dataSync(), ...r.grads.get('b')!.dataSync()];
  [3 * coef, 4 * coef, 12 * coef].forEach((e, i) => assert.ok(Math.abs(got[i] - e) < 1e-6));
  for (const g of r.grads.values()) g.dispose();

  const same = clipByGlobalNorm(grads, 20);
  assert.equal(same.clipped, false);
  assert.equal(same.grads.get('a'), a);
  const none = clipByGlobalNorm(grads, undefined);
  assert.equal(none.clipped, false);
  assert.ok(Math.abs(none.norm - 13) < 1e-6);
  a.dispose();
  b.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('a NaN gradient gives a NaN norm and is not scaled', () => {
  const g = tf.tensor1d([1, NaN]);
  const r = clipByGlobalNorm(new Map([['g', g]]), 1);
  assert.ok(Number.isNaN(r.norm));
  assert.equal(r.clipped, false);
  g.dispose();
});
