/**
 * The addon's own AVX-512 sgemm (native/blas/src/mor_sgemm.cc) against a float64 naive product
 * and OpenBLAS's sgemm: partial micro-tiles, several depth blocks and column panels, every
 * transpose, both ways of splitting over threads, accumulation (beta 1, through a bias), and the
 * same bits whatever the thread count (1, 2, 3). MOR_SGEMM chooses the kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../../src/backend/tf.ts';
import { enableBlas, loadBlasAddon, sgemmRequest } from '../../src/backend/blas.ts';
import { naiveMatMul, relErr } from './reference.ts';
import { values } from './values.ts';

const info = await initBackend({ announce: false });
const addon = loadBlasAddon();

/** Run fn with the own kernel on or off and `threads` OpenBLAS/addon threads, restoring both. */
function withKernel<T>(own: boolean, threads: number, fn: () => T): T {
  const wasOwn = addon!.ownSgemm();
  const wasThreads = addon!.getThreads();
  addon!.setSgemm(own);
  addon!.setThreads(threads);
  try {
    return fn();
  } finally {
    addon!.setSgemm(wasOwn);
    addon!.setThreads(wasThreads);
  }
}

// [m, n, k], with 32-column micro-tiles (n padded less to 32 than to 48) and with 48: one partial
// tile; tiles partial in both directions over two depth blocks (k > 640); few rows (columns split
// over threads) over two column panels (n > 3072); enough rows to split them (m >= 64) with
// partial edges and two column panels, the last over two depth blocks; A read in place (at most
// 12 panels) over ten 32-column panels, the last partial, split over the rows and two depth blocks.
const SHAPES: [number, number, number][] = [[3, 5, 7], [37, 53, 700], [37, 41, 700], [9, 3100, 20], [9, 3140, 20],
  [70, 3200, 40], [70, 3140, 660], [70, 310, 660]];

test('own sgemm equals a float64 naive product and OpenBLAS, for every transpose and thread split', () => {
  if (!addon?.ownSgemmAvailable()) {
    // No AVX-512 (or no addon): the own kernel cannot be switched on, and the banner does not claim it.
    if (addon) assert.equal(addon.setSgemm(true), false);
    assert.notEqual(info.sgemm, 'avx512');
    return;
  }
  for (const [m, n, k] of SHAPES) {
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const a = values(m * k, m + k);
      const b = values(k * n, n + k);
      const want = naiveMatMul(a, tA ? k : m, tA ? m : k, b, tB ? n : k, tB ? k : n, tA, tB);
      const run = (own: boolean, threads: number) => withKernel(own, threads, () => {
        const c = new Float32Array(m * n).fill(Number.NaN); // beta 0 must not read C
        addon.sgemm(a, b, c, m, n, k, tA, tB);
        return c;
      });
      const one = run(true, 1);
      const two = run(true, 2);
      const what = `m ${m} n ${n} k ${k} tA ${tA} tB ${tB}`;
      assert.ok(relErr(one, want) <= 2e-6, `${what}: own vs float64 ${relErr(one, want)}`);
      assert.ok(relErr(one, run(false, 2)) <= 2e-6, `${what}: own vs OpenBLAS`);
      assert.deepEqual(two, one, `${what}: two threads give other bits than one`);
      // Three threads: shares that do not divide evenly, more threads than this machine may have.
      assert.deepEqual(run(true, 3), one, `${what}: three threads give other bits than one`);
    }
  }
});

test('own sgemm accumulates into C (a bias added before the product) like OpenBLAS', () => {
  if (!addon?.ownSgemmAvailable()) {
    assert.notEqual(info.sgemm, 'avx512');
    return;
  }
  const [m, n, k] = [70, 100, 300];
  const heap = new ArrayBuffer(4 * (m * k + k * n + m * n + n));
  const f = new Float32Array(heap);
  f.set(values(m * k, 1), 0);
  f.set(values(k * n, 2), m * k);
  const bias = values(n, 3);
  f.set(bias, m * k + k * n + m * n);
  const product = naiveMatMul(f.subarray(0, m * k), m, k, f.subarray(m * k, m * k + k * n), k, n, false, false);
  const want = product.map((v, i) => v + bias[i % n]);
  for (const own of [true, false]) {
    withKernel(own, 2, () => addon.gemmHeap(heap, 1, m, n, k, false, false, 0, 4 * m * k, 4 * (m * k + k * n), 0, 0,
      4 * (m * k + k * n + m * n), n, false));
    const got = f.slice(m * k + k * n, m * k + k * n + m * n);
    assert.ok(relErr(got, want) <= 2e-6, `own ${own}: ${relErr(got, want)}`);
  }
});

test('MOR_SGEMM picks the kernel; bad values and an impossible request are clear errors', () => {
  const saved = process.env.MOR_SGEMM;
  try {
    delete process.env.MOR_SGEMM;
    assert.equal(sgemmRequest(), 'auto');
    process.env.MOR_SGEMM = 'OpenBLAS';
    assert.equal(sgemmRequest(), 'openblas');
    process.env.MOR_SGEMM = 'mkl';
    assert.throws(() => sgemmRequest(), /MOR_SGEMM must be auto, avx512 or openblas \(got "mkl"\)/);
    // Switching through enableBlas only where the BLAS path is active (MOR_MATMUL=wasm keeps the wasm kernels).
    if (info.matmulPath !== 'wasm+blas' || !addon) return;
    process.env.MOR_SGEMM = 'openblas';
    const forced = enableBlas();
    assert.ok(forced.ok && forced.sgemm === 'openblas' && !addon.ownSgemm());
    process.env.MOR_SGEMM = 'avx512';
    if (addon.ownSgemmAvailable()) {
      const own = enableBlas();
      assert.ok(own.ok && own.sgemm === 'avx512' && addon.ownSgemm());
    } else {
      assert.throws(() => enableBlas(), /MOR_SGEMM=avx512, but this CPU has no AVX-512/);
    }
  } finally {
    if (saved === undefined) delete process.env.MOR_SGEMM;
    else process.env.MOR_SGEMM = saved;
    if (info.matmulPath === 'wasm+blas') enableBlas();
  }
});
