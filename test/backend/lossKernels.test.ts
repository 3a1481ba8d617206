/**
 * The fused cross-entropy (`crossEntropyRows`): the native kernels (BLAS path) and the tfjs-op
 * version (pure-wasm path) against the formula evaluated in float64 on the host, for values and
 * for the gradient `dy * (softmax - onehot)`; vocabularies that are not multiples of the vector
 * width, large and very negative logits, and labels at both ends. Bad labels are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, setMatmulPath, tf } from '../../src/backend/tf.ts';
import { lossKernelsRegistered, nativeLossActive } from '../../src/backend/lossKernels.ts';
import { crossEntropyRows } from '../../src/models/llama/loss.ts';
import { Rng } from '../../src/util/rng.ts';

const initial = await initBackend({ announce: false });

/** Loss per row and dx = dy * (softmax - onehot), in float64. */
function reference(x: Float32Array, labels: Int32Array, dy: Float32Array, n: number, v: number): { loss: number[]; dx: Float64Array } {
  const loss: number[] = [];
  const dx = new Float64Array(n * v);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let j = 0; j < v; j++) m = Math.max(m, x[i * v + j]);
    let s = 0;
    for (let j = 0; j < v; j++) s += Math.exp(x[i * v + j] - m);
    const lse = m + Math.log(s);
    loss.push(lse - x[i * v + labels[i]]);
    for (let j = 0; j < v; j++) dx[i * v + j] = dy[i] * (Math.exp(x[i * v + j] - lse) - (j === labels[i] ? 1 : 0));
  }
  return { loss, dx };
}

function check(n: number, v: number, scale: number, seed: number): void {
  const rng = new Rng(seed);
  const x = Float32Array.from({ length: n * v }, () => scale * (2 * rng.next() - 1));
  if (n > 1) x[v + 3] = -1e30; // a logit far below the rest
  const labels = Int32Array.from({ length: n }, (_, i) => (i === 0 ? 0 : i === n - 1 ? v - 1 : Math.floor(rng.next() * v)));
  const dy = Float32Array.from({ length: n }, () => 0.5 + rng.next());
  const ref = reference(x, labels, dy, n, v);
  const xt = tf.tensor2d(x, [n, v]);
  const lt = tf.tensor1d(labels, 'int32');
  const dyt = tf.tensor1d(dy);
  const before = tf.memory().numTensors;
  const { value, grads } = tf.valueAndGrads((a: tf.Tensor) => crossEntropyRows(a as tf.Tensor2D, lt))([xt], dyt);
  const loss = value.dataSync();
  const dx = grads[0].dataSync();
  tf.dispose([value, ...grads]);
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  tf.dispose([xt, lt, dyt]);
  for (let i = 0; i < n; i++) {
    assert.ok(Math.abs(loss[i] - ref.loss[i]) <= 2e-6 * Math.max(1, Math.abs(ref.loss[i])), `loss row ${i}: ${loss[i]} vs ${ref.loss[i]}`);
  }
  let worst = 0;
  for (let k = 0; k < n * v; k++) worst = Math.max(worst, Math.abs(dx[k] - ref.dx[k]));
  assert.ok(worst <= 1e-6, `gradient max |diff| ${worst}`);
}

for (const path of ['blas', 'wasm'] as const) {
  test(`crossEntropyRows on the ${path} path: values and gradient equal the float64 formula`, async () => {
    if (path === 'blas' && !lossKernelsRegistered()) {
      // Without the addon the "blas" request falls back; the wasm run below covers the ops.
      assert.equal(initial.matmulPath, 'wasm');
      return;
    }
    await setMatmulPath(path);
    try {
      assert.equal(nativeLossActive(), path === 'blas');
      check(5, 2, 3, 1); // two words
      check(7, 37, 4, 2); // under one 16-wide block
      check(9, 1000, 10, 3); // a vector tail of 8
      check(4, 4099, 30, 4); // large logits, a tail of 3
    } finally {
      await setMatmulPath(initial.matmulPath === 'wasm+blas' ? 'blas' : 'wasm');
    }
  });
}

test('native crossEntropyRows refuses a label outside the vocabulary', () => {
  if (!nativeLossActive()) {
    assert.equal(initial.matmulPath, 'wasm'); // the ops version has no such check (callers pass counted rows)
    return;
  }
  const x = tf.zeros([2, 10]) as tf.Tensor2D;
  const l = tf.tensor1d([1, 10], 'int32');
  assert.throws(() => crossEntropyRows(x, l), /label is outside the vocabulary/);
  tf.dispose([x, l]);
});
