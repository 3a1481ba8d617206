/**
 * The fused layer ops (`rmsNorm`, `swiglu`, `applyRope`): the native kernels (BLAS path) and the
 * tfjs-op versions (pure-wasm path) against the formulas evaluated in float64 on the host, for
 * values and for every gradient; widths that are not multiples of the vector width, sizes that
 * split over the threads, large gate values; a finite-difference check of each op's gradients
 * (independent of the hand-derived formulas); leak checks; bad shapes and dtypes refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, setMatmulPath, tf } from '../../src/backend/tf.ts';
import { layerKernelsRegistered, nativeLayerKernelsActive, RMS_NORM } from '../../src/backend/layerKernels.ts';
import { rmsNorm } from '../../src/models/llama/rmsnorm.ts';
import { swiglu } from '../../src/models/llama/mlp.ts';
import { applyRope } from '../../src/models/llama/rope.ts';
import { Rng } from '../../src/util/rng.ts';

const initial = await initBackend({ announce: false });

const uniform = (rng: Rng, n: number, scale: number) => Float32Array.from({ length: n }, () => scale * (2 * rng.next() - 1));

/** max |a - b| / max(1, |b|) over the elements. */
function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return w;
}

/**
 * Value and gradients of `op` at `inputs` for the output gradient `dy`, with a leak check: the
 * call leaves no tensor behind.
 */
function run(op: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], dy: tf.Tensor): { y: Float32Array; grads: Float32Array[] } {
  const before = tf.memory().numTensors;
  const { value, grads } = tf.valueAndGrads(op)(inputs, dy);
  const y = value.dataSync() as Float32Array;
  const g = grads.map((t) => t.dataSync() as Float32Array);
  tf.dispose([value, ...grads]);
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  return { y, grads: g };
}

/**
 * Central differences of `sum(op(inputs) * dy)` in input `which` at a few elements, against the
 * op's own gradient there: the hand-written gradient matches the op's forward.
 */
function finiteDifference(op: (...xs: tf.Tensor[]) => tf.Tensor, data: Float32Array[], shapes: number[][], dy: Float32Array,
  which: number, grad: Float32Array, at: number[]): void {
  const h = 1e-2;
  const dyt = tf.tensor(dy, op(...data.map((d, i) => tf.tensor(d, shapes[i]))).shape);
  const loss = (ds: Float32Array[]) => tf.tidy(() => tf.sum(tf.mul(op(...ds.map((d, i) => tf.tensor(d, shapes[i]))), dyt)).dataSync()[0]);
  for (const k of at) {
    const plus = data.map((d) => d.slice());
    const minus = data.map((d) => d.slice());
    plus[which][k] += h;
    minus[which][k] -= h;
    const fd = (loss(plus) - loss(minus)) / (2 * h);
    assert.ok(Math.abs(fd - grad[k]) <= 2e-3 * Math.max(1, Math.abs(fd)), `input ${which} element ${k}: gradient ${grad[k]}, finite difference ${fd}`);
  }
  tf.dispose(dyt);
}

// ---- RMSNorm: y = w x r, r = 1 / sqrt(mean(x^2) + eps) ----

function normReference(x: Float32Array, w: Float32Array, dy: Float32Array, rows: number, d: number, eps: number) {
  const y = new Float64Array(rows * d);
  const dx = new Float64Array(rows * d);
  const dw = new Float64Array(d);
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[i * d + j] ** 2;
    const r = 1 / Math.sqrt(ss / d + eps);
    let gx = 0; // sum_j dy_j w_j x_j
    for (let j = 0; j < d; j++) gx += dy[i * d + j] * w[j] * x[i * d + j];
    for (let j = 0; j < d; j++) {
      const k = i * d + j;
      y[k] = w[j] * x[k] * r;
      dx[k] = r * dy[k] * w[j] - (x[k] * r ** 3 * gx) / d;
      dw[j] += dy[k] * x[k] * r;
    }
  }
  return { y, dx, dw };
}

function checkNorm(shape: number[], seed: number, fd = false): void {
  const rng = new Rng(seed);
  const d = shape[shape.length - 1];
  const rows = shape.reduce((a, b) => a * b, 1) / d;
  const eps = 1e-5;
  const x = uniform(rng, rows * d, 3);
  if (rows > 1) x.fill(0, d, 2 * d); // a zero row: r = 1 / sqrt(eps)
  const w = uniform(rng, d, 2);
  const dy = uniform(rng, rows * d, 1);
  const ref = normReference(x, w, dy, rows, d, eps);
  const op = (a: tf.Tensor, b: tf.Tensor) => rmsNorm(a, b as tf.Tensor1D, eps);
  const [xt, wt, dyt] = [tf.tensor(x, shape), tf.tensor1d(w), tf.tensor(dy, shape)];
  const { y, grads: [dx, dw] } = run(op, [xt, wt], dyt);
  tf.dispose([xt, wt, dyt]);
  assert.ok(worst(y, ref.y) <= 1e-6, `rmsNorm ${shape} value: ${worst(y, ref.y)}`);
  assert.ok(worst(dx, ref.dx) <= 1e-6, `rmsNorm ${shape} dx: ${worst(dx, ref.dx)}`);
  // dw sums over the rows terms that carry float32 rounding (of r on both paths, and of the sums
  // on the op path), with cancellation: the error is allowed to grow with the rows.
  assert.ok(worst(dw, ref.dw) <= 1e-6 + 3e-8 * rows, `rmsNorm ${shape} dw: ${worst(dw, ref.dw)}`);
  if (fd) {
    finiteDifference(op, [x, w], [shape, [d]], dy, 0, dx, [0, 1, d - 1, 2 * d, rows * d - 1]); // not the zero row: too curved for h
    finiteDifference(op, [x, w], [shape, [d]], dy, 1, dw, [0, d >> 1, d - 1]);
  }
}

// ---- SwiGLU: a = g sigmoid(g) u ----

function swigluReference(g: Float32Array, u: Float32Array, da: Float32Array) {
  const n = g.length;
  const a = new Float64Array(n);
  const dg = new Float64Array(n);
  const du = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = 1 / (1 + Math.exp(-g[i]));
    a[i] = g[i] * s * u[i];
    dg[i] = da[i] * u[i] * (s + g[i] * s * (1 - s)); // d/dg (g s) = s + g s'
    du[i] = da[i] * g[i] * s;
  }
  return { a, dg, du };
}

function checkSwiglu(shape: number[], seed: number, fd = false): void {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const g = uniform(rng, n, 8);
  // Gate values where exp(-g) overflows or underflows, and zero.
  [0, -100, 100, -90, 90, -87.5, 88.8, -20, 20].forEach((v, i) => { if (i < n) g[i] = v; });
  const u = uniform(rng, n, 2);
  const da = uniform(rng, n, 1);
  const ref = swigluReference(g, u, da);
  const [gt, ut, dat] = [tf.tensor(g, shape), tf.tensor(u, shape), tf.tensor(da, shape)];
  const { y, grads: [dg, du] } = run(swiglu, [gt, ut], dat);
  tf.dispose([gt, ut, dat]);
  assert.ok(worst(y, ref.a) <= 1e-6, `swiglu ${shape} value: ${worst(y, ref.a)}`);
  assert.ok(worst(dg, ref.dg) <= 1e-6, `swiglu ${shape} dgate: ${worst(dg, ref.dg)}`);
  assert.ok(worst(du, ref.du) <= 1e-6, `swiglu ${shape} dup: ${worst(du, ref.du)}`);
  if (fd) {
    finiteDifference(swiglu, [g, u], [shape, shape], da, 0, dg, [0, 9, 10, n - 1]);
    finiteDifference(swiglu, [g, u], [shape, shape], da, 1, du, [0, 9, n - 1]);
  }
}

// ---- Rope: y = (x cos + rotate_half(x) sin) scale, rotate_half(x) = [-x2, x1] ----

function ropeReference(x: Float32Array, cos: Float32Array, sin: Float32Array, dy: Float32Array, shape: number[], scale: number) {
  const [b, t, h, d] = shape;
  const half = d / 2;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  for (let p = 0; p < b * t; p++) {
    for (let k = 0; k < h; k++) {
      const o = (p * h + k) * d;
      for (let j = 0; j < d; j++) {
        // y[j] reads x[j] through cos[j] and x[partner] through +-sin[j]; backward scatters the same.
        const partner = j < half ? j + half : j - half;
        const sign = j < half ? -1 : 1;
        y[o + j] = scale * (x[o + j] * cos[p * d + j] + sign * x[o + partner] * sin[p * d + j]);
        dx[o + j] += scale * dy[o + j] * cos[p * d + j];
        dx[o + partner] += scale * sign * dy[o + j] * sin[p * d + j];
      }
    }
  }
  return { y, dx };
}

function checkRope(shape: number[], seed: number, { fd = false, tableBatch = shape[0], scale = 1 } = {}): void {
  const rng = new Rng(seed);
  const [b, t, , d] = shape;
  const n = shape.reduce((a, c) => a * c, 1);
  const x = uniform(rng, n, 3);
  const angles = uniform(rng, tableBatch * t * d, 10);
  const cosB = angles.map(Math.cos);
  const sinB = angles.map(Math.sin);
  // The reference takes one table row per (batch, position); a batch-1 table repeats.
  const expand = (tb: Float32Array) => Float32Array.from({ length: b * t * d }, (_, i) => tb[i % (tableBatch * t * d)]);
  const dy = uniform(rng, n, 1);
  const ref = ropeReference(x, expand(cosB), expand(sinB), dy, shape, scale);
  const [xt, dyt] = [tf.tensor(x, shape), tf.tensor(dy, shape)];
  const cos = tf.tensor4d(cosB, [tableBatch, t, 1, d]);
  const sin = tf.tensor4d(sinB, [tableBatch, t, 1, d]);
  const op = (a: tf.Tensor) => applyRope(a as tf.Tensor4D, cos, sin, scale);
  const { y, grads: [dx] } = run(op, [xt], dyt);
  tf.dispose([xt, dyt]);
  assert.ok(worst(y, ref.y) <= 5e-7, `rope ${shape} value: ${worst(y, ref.y)}`);
  assert.ok(worst(dx, ref.dx) <= 5e-7, `rope ${shape} dx: ${worst(dx, ref.dx)}`);
  if (fd) finiteDifference(op, [x], [shape], dy, 0, dx, [0, d / 2 - 1, d / 2, d - 1, n - 1]);
  tf.dispose([cos, sin]);
}

for (const path of ['blas', 'wasm'] as const) {
  test(`rmsNorm, swiglu and applyRope on the ${path} path: values and gradients equal the float64 formulas`, async () => {
    if (path === 'blas' && !layerKernelsRegistered()) {
      // Without the addon the "blas" request falls back; the wasm run below covers the ops.
      assert.equal(initial.matmulPath, 'wasm');
      return;
    }
    await setMatmulPath(path);
    try {
      assert.equal(nativeLayerKernelsActive(), path === 'blas');
      checkNorm([5, 13], 1, true); // a width under one vector, with a tail
      checkNorm([2, 3, 8], 2); // exactly one vector, rank 3
      checkNorm([7, 37], 3, true);
      checkNorm([1031, 1029], 4); // past mor_parallel.h's threshold: rows and columns split over the threads
      checkSwiglu([3, 11], 5, true); // under and over one vector
      checkSwiglu([3, 353, 1001], 6); // split over the threads, odd length
      checkRope([2, 3, 4, 10], 7, { fd: true }); // half 5: no full vector
      checkRope([1, 5, 3, 22], 8, { fd: true, scale: 0.3 }); // half 11: one vector and a tail
      checkRope([4, 260, 16, 64], 9, { scale: 0.125 }); // the model's head width and query scale, over the threads
      checkRope([2, 5, 3, 16], 10, { tableBatch: 1, scale: 0.5 }); // tables shared by the batch: the ops on both paths
    } finally {
      await setMatmulPath(initial.matmulPath === 'wasm+blas' ? 'blas' : 'wasm');
    }
  });
}

test('the native layer kernels refuse bad shapes and dtypes', () => {
  if (!nativeLayerKernelsActive()) {
    assert.equal(initial.matmulPath, 'wasm'); // the ops version is only checked by tfjs's broadcasting
    return;
  }
  const x = tf.zeros([2, 6]);
  const w5 = tf.zeros([5]) as tf.Tensor1D;
  assert.throws(() => rmsNorm(x, w5, 1e-5), /MorRmsNorm: x \[2,6\] must end in the length of the 1-D weight \[5\]/);
  const xi = tf.zeros([2, 6], 'int32');
  const w6 = tf.zeros([6]) as tf.Tensor1D;
  assert.throws(() => rmsNorm(xi, w6, 1e-5), /MorRmsNorm: x must be float32, got int32/);
  assert.throws(() => tf.engine().runKernel(RMS_NORM, { x, weight: w6 }, {}), /MorRmsNorm: eps must be a number >= 0/);
  const u = tf.zeros([2, 5]);
  assert.throws(() => swiglu(x, u), /MorSwiglu: gate \[2,6\] and up \[2,5\] must have one shape/);
  const q = tf.zeros([1, 2, 3, 6]) as tf.Tensor4D;
  const c = tf.zeros([1, 2, 1, 6]) as tf.Tensor4D;
  const odd = tf.zeros([1, 2, 3, 5]) as tf.Tensor4D;
  const cOdd = tf.zeros([1, 2, 1, 5]) as tf.Tensor4D;
  assert.throws(() => applyRope(odd, cOdd, cOdd), /MorRope: the head dimension must be even, got 5/);
  assert.throws(() => applyRope(q, c, c, NaN), /MorRope: scale must be a finite number, got NaN/);
  const before = tf.memory().numTensors;
  assert.doesNotThrow(() => tf.dispose(applyRope(q, c, c)));
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, w5, xi, w6, u, q, c, odd, cOdd]);
});
