/**
 * The W^T cache of frozen projections (active on the pure-wasm path): same outputs and input
 * gradients as a plain Linear, dropped when the weight is replaced, skipped for Variables,
 * freed by model.dispose(). Runs on whichever path is active; the cache-specific assertions
 * apply when the path is pure wasm (CI forces it with MOR_MATMUL=wasm in one job).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backendInfo, initBackend, tf } from '../../src/backend/tf.ts';
import { FrozenLinear } from '../../src/models/llama/frozenLinear.ts';
import { Linear } from '../../src/nn/linear.ts';

await initBackend();
const wasm = backendInfo().matmulPath === 'wasm';

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

test('FrozenLinear equals Linear in value and input gradient; cache follows weight replacement', () => {
  const w = tf.randomNormal([7, 5], 0, 1, 'float32', 1) as tf.Tensor2D;
  const b = tf.randomNormal([7], 0, 1, 'float32', 2) as tf.Tensor1D;
  const plain = new Linear(w.clone(), b.clone());
  const frozen = new FrozenLinear(w, b);
  const x = tf.randomNormal([2, 3, 5], 0, 1, 'float32', 3);
  const before = tf.memory().numTensors;
  const y1 = frozen.forward(x);
  const cached = tf.memory().numTensors - before - 1; // minus y1
  assert.equal(cached, wasm ? 1 : 0, 'one kept W^T on the wasm path only');
  const y0 = plain.forward(x);
  assert.ok(maxDiff(y0, y1) < 1e-5);
  const g0 = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(plain.forward(v), tf.range(0, 7))))(x);
  const g1 = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(frozen.forward(v), tf.range(0, 7))))(x);
  assert.ok(maxDiff(g0, g1) < 1e-5);
  // replace the weight: the cached W^T must not be used any more
  const w2 = tf.randomNormal([7, 5], 0, 1, 'float32', 4) as tf.Tensor2D;
  frozen.replaceParam('weight', w2).dispose();
  plain.replaceParam('weight', w2.clone()).dispose();
  const y2 = frozen.forward(x);
  const y3 = plain.forward(x);
  assert.ok(maxDiff(y2, y3) < 1e-5);
  // trainable Variable: no cache, and gradients reach the weight
  const v = tf.variable(w2.clone(), true);
  frozen.replaceParam('weight', v).dispose();
  const n0 = tf.memory().numTensors;
  const { grads, value } = tf.variableGrads(() => tf.sum(frozen.forward(x)) as tf.Scalar, [v]);
  assert.ok(tf.tidy(() => tf.sum(tf.abs(grads[v.name])).dataSync()[0]) > 0);
  tf.dispose([value, grads[v.name]]);
  // no cache kept for a Variable; the W^T cached for the previous weight is freed
  assert.equal(tf.memory().numTensors, n0 - (wasm ? 1 : 0));
  tf.dispose([y0, y1, y2, y3, g0, g1, x]);
  frozen.releaseCaches();
  frozen.dispose();
  plain.dispose();
});
