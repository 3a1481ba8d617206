/**
 * Backend initialisation: the wasm backend, and the Identity kernel that shares memory
 * (the engine clones every tensor saved for backprop; a copy per saved weight was costly).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backendInfo, describeBackend, initBackend, tf } from '../../src/backend/tf.ts';

await initBackend({ announce: false });

test('initBackend is idempotent and runs on wasm', async () => {
  const again = await initBackend();
  assert.equal(again, backendInfo());
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(describeBackend(again), /^(OpenBLAS, \d+ threads?|pure wasm \(.+\))$/);
});

test('clones share memory yet stay valid when the source is disposed', () => {
  const before = tf.memory();
  const buffers = () => tf.engine().backend.numDataIds(); // wasm heap allocations
  const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
  const buffersOne = buffers();
  const y = x.clone();
  const z = tf.clone(x);
  assert.equal(buffers(), buffersOne, 'clones allocate no new wasm buffer');
  x.dispose();
  assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4, 5, 6]);
  y.dispose();
  assert.deepEqual(z.arraySync(), [[1, 2, 3], [4, 5, 6]]);
  z.dispose();
  assert.equal(tf.memory().numTensors, before.numTensors);
  assert.equal(buffers(), buffersOne - 1);
});

test('a clone keeps its values when the variable it came from is assigned', () => {
  const v = tf.variable(tf.tensor1d([1, 2, 3]));
  const snapshot = v.clone();
  v.assign(tf.tensor1d([7, 8, 9]));
  assert.deepEqual(Array.from(snapshot.dataSync()), [1, 2, 3]);
  assert.deepEqual(Array.from(v.dataSync()), [7, 8, 9]);
  tf.dispose([v, snapshot]);
});

test('gradients through saved (cloned) inputs are unchanged by sharing', () => {
  const x = tf.tensor1d([0.5, -1, 2]);
  const g = tf.grad((t: tf.Tensor) => t.square().mul(t.exp()).sum())(x);
  const want = [0.5, -1, 2].map((t) => (2 * t + t * t) * Math.exp(t));
  Array.from(g.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i]))));
  tf.dispose([x, g]);
});
