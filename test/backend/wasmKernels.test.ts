/**
 * The replaced wasm kernels (src/backend/wasmKernels.ts): Identity shares memory, Slice and
 * Unpack copy only the selected runs, _FusedMatMul (tested in blas.test.ts) transposes first.
 * References are computed from the host arrays directly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { values } from './values.ts';

await initBackend({ announce: false });

/** Naive reference: the box begin..begin+size of a row-major array of the given shape. */
function naiveSlice(data: ArrayLike<number>, shape: number[], begin: number[], size: number[]): number[] {
  const out: number[] = [];
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  const walk = (dim: number, off: number) => {
    if (dim === shape.length) {
      out.push(data[off]);
      return;
    }
    for (let i = 0; i < size[dim]; i++) walk(dim + 1, off + (begin[dim] + i) * strides[dim]);
  };
  walk(0, 0);
  return out;
}

/** Small deterministic integer stream for shapes and boxes. */
function ints(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

test('tf.slice equals a naive box copy for ranks 1-5, dtypes and boxes (incl. empty)', () => {
  const rnd = ints(42);
  for (let trial = 0; trial < 200; trial++) {
    const rank = 1 + rnd(5);
    const shape = Array.from({ length: rank }, () => 1 + rnd(5));
    const begin = shape.map((d) => rnd(d));
    const size = shape.map((d, i) => rnd(d - begin[i] + 1)); // may be 0
    if (trial % 3 === 0) shape.forEach((d, i) => { if (rnd(2)) { begin[i] = 0; size[i] = d; } });
    const dtype = (['float32', 'int32', 'bool'] as const)[trial % 3];
    const n = shape.reduce((p, d) => p * d, 1);
    const data = Array.from(values(n, trial), (v) => (dtype === 'float32' ? v : dtype === 'int32' ? Math.round(v * 100) : v > 0 ? 1 : 0));
    const before = tf.memory().numTensors;
    const got = tf.tidy(() => Array.from(tf.slice(tf.tensor(data, shape, dtype), begin, size).dataSync()));
    assert.equal(tf.memory().numTensors, before);
    const want = naiveSlice(dtype === 'float32' ? Float32Array.from(data) : data, shape, begin, size);
    assert.deepEqual(got, want, `shape [${shape}] begin [${begin}] size [${size}] ${dtype}`);
  }
});

test('tf.unstack along every axis equals naive slices, and its gradient is right', () => {
  const shape = [3, 4, 5];
  const data = values(60, 7);
  for (let axis = 0; axis < 3; axis++) {
    const parts = tf.tidy(() => tf.unstack(tf.tensor(data, shape), axis).map((t) => ({ shape: t.shape, v: Array.from(t.dataSync()) })));
    assert.equal(parts.length, shape[axis]);
    parts.forEach((p, i) => {
      const begin = [0, 0, 0];
      const size = shape.slice();
      begin[axis] = i;
      size[axis] = 1;
      assert.deepEqual(p.shape, shape.filter((_, d) => d !== axis));
      assert.deepEqual(p.v, naiveSlice(data, shape, begin, size));
    });
  }
  // d/dx sum_i (i+1) * sum(unstack(x)[i]) = i+1 on slice i along axis 0.
  const g = tf.tidy(() => Array.from(tf.grad((x: tf.Tensor) => tf.addN(tf.unstack(x).map((t, i) => t.sum().mul(i + 1))))(tf.tensor(data, shape)).dataSync()));
  assert.deepEqual(g, Array.from({ length: 60 }, (_, j) => Math.floor(j / 20) + 1));
});

test('slices stay correct across wasm memory growth', () => {
  const got = tf.tidy(() => {
    const x = tf.tensor(values(256 * 1024, 3), [256, 1024]);
    const big = tf.zeros([64 * 1024 * 1024]); // forces the heap to grow
    const s = tf.slice(x, [10, 3], [2, 4]).dataSync();
    big.dispose();
    return Array.from(s);
  });
  const x = values(256 * 1024, 3);
  assert.deepEqual(got, naiveSlice(x, [256, 1024], [10, 3], [2, 4]));
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

/** Naive reference: x[.., indices[...], ..] along `axis` of a row-major array. */
function naiveGather(data: ArrayLike<number>, shape: number[], ids: number[], axis: number): number[] {
  const outer = shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const id of ids) for (let i = 0; i < inner; i++) out.push(data[(o * shape[axis] + id) * inner + i]);
  }
  return out;
}

test('tf.gather equals a naive gather for ranks 1-4, every axis, float32 and int32, repeated and empty indices', () => {
  const rnd = ints(7);
  for (let trial = 0; trial < 120; trial++) {
    const rank = 1 + rnd(4);
    const shape = Array.from({ length: rank }, () => 1 + rnd(5));
    const axis = rnd(rank);
    const dtype = trial % 2 ? 'int32' : 'float32';
    const n = shape.reduce((p, d) => p * d, 1);
    const data = Array.from({ length: n }, (_, i) => (dtype === 'int32' ? i * 3 - 7 : Math.sin(i) * 10));
    const idShape = trial % 3 === 0 ? [rnd(4)] : [1 + rnd(3), 1 + rnd(3)]; // 2-D indices, and sometimes none
    const ids = Array.from({ length: idShape.reduce((p, d) => p * d, 1) }, () => rnd(shape[axis]));
    tf.tidy(() => {
      const x = tf.tensor(data, shape, dtype);
      const got = tf.gather(x, tf.tensor(ids, idShape, 'int32'), axis);
      assert.deepEqual(got.shape, [...shape.slice(0, axis), ...idShape, ...shape.slice(axis + 1)]);
      const want = naiveGather(dtype === 'float32' ? Float32Array.from(data) : data, shape, ids, axis);
      assert.deepEqual(Array.from(got.dataSync()), want, `shape [${shape}] axis ${axis} ids [${ids}]`);
    });
  }
});

test('tf.gather rejects an index outside the axis, with the index in the message', () => {
  tf.tidy(() => {
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    assert.throws(() => tf.gather(x, tf.tensor1d([0, 2], 'int32')), /index value 2 is not in \[0, 1\]/);
    assert.throws(() => tf.gather(x, tf.tensor1d([-1], 'int32')), /index value -1/);
  });
});
