/**
 * The optimizer's native passes (src/backend/optimizerKernels.ts): AdamW in one in-place pass
 * gives the same bits as its tfjs ops (the pure-wasm path), over tensors that split over the
 * threads, an empty one, decay on and off and a gradient scale; memory another tensor shares is
 * never written; nothing is allocated in the common case; the statistics (sum of squares, max
 * |x|) against float64 host sums, NaN and infinities included; malformed calls to the addon refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, setMatmulPath, tf } from '../../src/backend/tf.ts';
import { nativeOptimizerActive, tensorStats } from '../../src/backend/optimizerKernels.ts';
import { loadBlasAddon } from '../../src/backend/blas.ts';
import { AdamW } from '../../src/train/adamw.ts';
import { globalNorm } from '../../src/train/clip.ts';
import { Rng } from '../../src/util/rng.ts';

const initial = await initBackend({ announce: false });
const native = nativeOptimizerActive();

// Shapes: small, one past a vector width, one that splits over the threads (> 2^16 elements
// together), an empty one.
const SHAPES: [string, number[]][] = [['a.weight', [3, 5]], ['a.bias', [17]], ['b.weight', [300, 257]], ['c.weight', [0, 4]]];

/** Final parameters and moments of 5 AdamW updates on `path` from fixed values. */
async function adamRun(path: 'blas' | 'wasm'): Promise<Float32Array[]> {
  await setMatmulPath(path);
  assert.equal(nativeOptimizerActive(), path === 'blas');
  const rng = new Rng(11);
  const params = SHAPES.map(([name, shape]) => {
    const size = shape.reduce((x, y) => x * y, 1);
    return [name, tf.tidy(() => tf.variable(tf.tensor(rng.normalArray(size), shape)))] as [string, tf.Variable];
  });
  const opt = new AdamW(params, { weightDecay: 0.1, beta2: 0.95 });
  for (let k = 0; k < 5; k++) {
    const grads = new Map(params.map(([n, v]) => [n, tf.tensor(rng.normalArray(v.size, 0, 3), v.shape)]));
    opt.update(grads, 0.01 * (k + 1), k === 2 ? 0.37 : 1);
    tf.dispose([...grads.values()]);
  }
  const state = opt.exportState();
  const out = params.flatMap(([n, v]) => [v.dataSync() as Float32Array, state.m.get(n)!.data, state.v.get(n)!.data]);
  opt.dispose();
  tf.dispose(params.map(([, v]) => v));
  return out;
}

test('native AdamW gives the same bits as the tfjs ops, decay on and off, a gradient scale, threads', async () => {
  if (!native) {
    // Pure-wasm path: AdamW runs its tfjs ops (test/train/adamw.test.ts checks them against PyTorch's formula).
    assert.equal(initial.matmulPath, 'wasm');
    return;
  }
  try {
    const a = await adamRun('blas');
    const b = await adamRun('wasm');
    a.forEach((x, i) => assert.deepEqual(new Uint32Array(x.buffer, x.byteOffset, x.length), new Uint32Array(b[i].buffer, b[i].byteOffset, b[i].length), `array ${i}`));
    assert.ok(a.some((x) => x.length > 65536), 'one tensor large enough to split over the threads');
  } finally {
    await setMatmulPath(initial.matmulPath === 'wasm+blas' ? 'blas' : 'wasm');
  }
});

test('native AdamW updates in place, allocating nothing, and never writes memory another tensor shares', () => {
  if (!native) {
    assert.equal(initial.matmulPath, 'wasm');
    return;
  }
  const start = tf.memory().numTensors;
  const source = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  const shared = tf.variable(source); // shares source's memory while source lives
  const alone = tf.tidy(() => tf.variable(tf.tensor2d([5, 6, 7, 8], [2, 2])));
  const opt = new AdamW([['shared.weight', shared], ['alone.weight', alone]], { weightDecay: 0 });
  const g = tf.tensor2d([1, -1, 1, -1], [2, 2]);
  const grads = new Map([['shared.weight', g], ['alone.weight', g]]);
  const before = { tensors: tf.memory().numTensors, bytes: tf.memory().numBytes };
  opt.update(grads, 0.1);
  assert.deepEqual(Array.from(source.dataSync()), [1, 2, 3, 4], 'the tensor the variable was made from is unchanged');
  // Adam's first step moves every weight by lr against the gradient's sign.
  assert.deepEqual(Array.from(shared.dataSync(), (x) => Math.round(x * 1e4) / 1e4), [0.9, 2.1, 2.9, 4.1]);
  assert.deepEqual(Array.from(alone.dataSync(), (x) => Math.round(x * 1e4) / 1e4), [4.9, 6.1, 6.9, 8.1]);
  source.dispose(); // shared now holds its memory alone: updated in place from here
  const alone0 = { tensors: tf.memory().numTensors, bytes: tf.memory().numBytes };
  opt.update(grads, 0.1);
  opt.update(grads, 0.1);
  assert.deepEqual({ tensors: tf.memory().numTensors, bytes: tf.memory().numBytes }, alone0, 'nothing allocated');
  assert.equal(before.tensors - 1, alone0.tensors);
  opt.dispose();
  tf.dispose([shared, alone, g]);
  assert.equal(tf.memory().numTensors, start);
});

test('tensorStats: sums of squares and max |x| against float64 host sums; NaN, infinities, empty', () => {
  if (!native) {
    const one = tf.scalar(1);
    assert.equal(tensorStats([one]), undefined, 'pure-wasm path: the caller uses tfjs ops');
    one.dispose();
    return;
  }
  const rng = new Rng(4);
  const data = [rng.normalArray(100003, 0, 2), Float32Array.from([-3, 1, 2]), new Float32Array(0), Float32Array.from([1, NaN, -7]),
    Float32Array.from([-Infinity, 1])];
  const ts = data.map((d) => tf.tensor1d(d));
  const stats = tensorStats(ts)!;
  data.forEach((d, i) => {
    let sum = 0;
    let max = 0;
    for (const x of d) {
      sum += x * x;
      max = Math.max(max, Math.abs(x));
    }
    if (!Number.isFinite(sum)) assert.ok(Object.is(stats[2 * i], sum), `tensor ${i} sum ${stats[2 * i]} vs ${sum}`);
    else assert.ok(Math.abs(stats[2 * i] - sum) <= 1e-12 * Math.max(1, sum), `tensor ${i} sum ${stats[2 * i]} vs ${sum}`);
    assert.ok(Object.is(stats[2 * i + 1], max), `tensor ${i} max ${stats[2 * i + 1]} vs ${max}`);
  });
  assert.equal(globalNorm(ts.slice(0, 3)), Math.sqrt(stats[0] + stats[2] + stats[4]));
  assert.equal(tensorStats([tf.tensor1d([1, 2], 'int32')]), undefined, 'int32: the caller uses tfjs ops');
  tf.dispose(ts);
});

test('the addon refuses tables that are not Float64Array and offsets outside the heap', () => {
  const addon = loadBlasAddon();
  if (!addon) {
    assert.equal(initial.matmulPath, 'wasm', 'no addon: the pure-wasm path');
    return;
  }
  const heap = new ArrayBuffer(64);
  const consts = new Float64Array(9).fill(1);
  assert.throws(() => addon.adamwStep(heap, new Float32Array(9) as unknown as Float64Array, consts, 1), /adamwStep: bad arguments/);
  assert.throws(() => addon.adamwStep(heap, Float64Array.from([4, 0, 16, 32, 48, 0, 16, 32, 0]), new Float64Array(8), 1), /adamwStep: bad table/);
  assert.throws(() => addon.adamwStep(heap, Float64Array.from([4, 0, 16, 32, 60, 0, 16, 32, 0]), consts, 1), /outside the heap/);
  assert.throws(() => addon.tensorStats(heap, Float64Array.from([20, 0]), new Float64Array(2), 1), /outside the heap/);
  assert.throws(() => addon.tensorStats(heap, Float64Array.from([2, 0]), new Float64Array(3), 1), /tensorStats: bad table/);
});
