/**
 * The native OpenBLAS path: path selection (MOR_MATMUL), the fallback when the addon is
 * missing, the raw sgemm, the replaced BatchMatMul/_FusedMatMul kernels on the wasm heap.
 * Without OpenBLAS the BLAS-specific checks assert the fallback reason instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, setMatmulPath, tf } from '../../src/backend/tf.ts';
import { blasActive, blasLoadError, blasThreadCount, loadBlasAddon } from '../../src/backend/blas.ts';
import { matMul } from '../../src/backend/matmul.ts';
import { cpuReference, naiveMatMul, relErr, values } from './reference.ts';

const initial = await initBackend({ announce: false });
const forcedWasm = (process.env.MOR_MATMUL ?? '').toLowerCase() === 'wasm';
const addon = loadBlasAddon();
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');

/** Run child-matmul.ts with extra env; returns its parsed JSON line. */
function child(env: Record<string, string>) {
  const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'child-matmul.ts')], {
    cwd: root,
    env: { ...process.env, MOR_QUIET: '1', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(res.status, 0, `child failed: ${res.stderr}`);
  return JSON.parse(res.stdout.trim().split('\n').pop()!) as {
    info: { matmulPath: string; blasReason?: string; threads: number };
    out: number[]; da: number[]; db: number[];
  };
}

test('the active path follows MOR_MATMUL and the addon', () => {
  if (forcedWasm) {
    assert.equal(initial.matmulPath, 'wasm');
    assert.match(initial.blasReason ?? '', /MOR_MATMUL=wasm/);
    assert.equal(blasActive(), false);
  } else if (addon) {
    assert.equal(initial.matmulPath, 'wasm+blas');
    assert.equal(initial.threads, blasThreadCount());
    assert.match(initial.blasConfig ?? '', /OpenBLAS/);
  } else {
    // No OpenBLAS here: the fallback must say why.
    assert.equal(initial.matmulPath, 'wasm');
    assert.equal(initial.blasReason, blasLoadError());
    assert.match(initial.blasReason ?? '', /not built|failed to load/);
  }
});

test('thread count follows the cores unless MOR_BLAS_THREADS overrides it', () => {
  const saved = process.env.MOR_BLAS_THREADS;
  try {
    delete process.env.MOR_BLAS_THREADS;
    assert.equal(blasThreadCount(), os.availableParallelism());
    process.env.MOR_BLAS_THREADS = '3';
    assert.equal(blasThreadCount(), 3);
    process.env.MOR_BLAS_THREADS = 'many';
    assert.throws(() => blasThreadCount(), /MOR_BLAS_THREADS must be a positive integer/);
  } finally {
    if (saved === undefined) delete process.env.MOR_BLAS_THREADS;
    else process.env.MOR_BLAS_THREADS = saved;
  }
});

test('a child with MOR_MATMUL=wasm reports wasm and computes the same product and gradients', () => {
  const wasm = child({ MOR_MATMUL: 'wasm' });
  assert.equal(wasm.info.matmulPath, 'wasm');
  // Reference: float64 naive product of the same inputs, and its gradients for sum(C^2).
  const a = values(2 * 5 * 7, 11);
  const b = values(6 * 7, 12);
  const want = naiveMatMul(a, 10, 7, b, 6, 7, false, true); // [10, 6]
  assert.ok(relErr(wasm.out, want) <= 1e-4, `wasm child forward: ${relErr(wasm.out, want)}`);
  const g = Float32Array.from(want, (v) => 2 * v);
  assert.ok(relErr(wasm.da, naiveMatMul(g, 10, 6, b, 6, 7, false, false)) <= 1e-4, 'wasm child dA');
  assert.ok(relErr(wasm.db, naiveMatMul(g, 10, 6, a, 10, 7, true, false)) <= 1e-4, 'wasm child dB');
  const auto = child({ MOR_MATMUL: 'auto', MOR_BLAS_THREADS: '1' });
  assert.equal(auto.info.matmulPath, addon ? 'wasm+blas' : 'wasm');
  if (addon) assert.equal(auto.info.threads, 1);
  assert.ok(relErr(auto.out, wasm.out) <= 1e-4 && relErr(auto.da, wasm.da) <= 1e-4 && relErr(auto.db, wasm.db) <= 1e-4);
});

test('MOR_MATMUL=blas fails loudly when the kernel is unavailable; bad values are rejected', async () => {
  const bad = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'child-matmul.ts')], {
    cwd: root, env: { ...process.env, MOR_QUIET: '1', MOR_MATMUL: 'gpu' }, encoding: 'utf8', timeout: 60_000,
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /MOR_MATMUL must be wasm, blas or auto \(got "gpu"\)/);
  if (!addon) {
    await assert.rejects(setMatmulPath('blas'), /OpenBLAS kernel is unavailable/);
  }
});

test('raw sgemm equals a float64 naive product for every transpose combination', () => {
  if (!addon) {
    assert.ok(blasLoadError(), 'without the addon there is a reason');
    return;
  }
  for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const [m, k, n] = [37, 53, 41];
    const a = values(m * k, 1);
    const b = values(k * n, 2);
    const c = new Float32Array(m * n);
    addon.sgemm(a, b, c, m, n, k, tA, tB);
    const want = naiveMatMul(a, tA ? k : m, tA ? m : k, b, tB ? n : k, tB ? k : n, tA, tB);
    assert.ok(relErr(c, want) <= 1e-4, `tA=${tA} tB=${tB}`);
  }
  assert.throws(() => addon.sgemm(new Float32Array(3), new Float32Array(4), new Float32Array(4), 2, 2, 2, false, false), /too small/);
  assert.throws(() => addon.gemmHeap(new ArrayBuffer(16), 1, 4, 4, 4, false, false, 0, 0, 0, 0, 0, 0, 0, false), /outside the heap/);
});

test('on the BLAS path tf.matMul with general batch broadcasts matches the CPU backend', async () => {
  if (!addon || forcedWasm) {
    assert.equal(blasActive(), false);
    return;
  }
  await setMatmulPath('blas');
  // General broadcast ([2,1] x [1,3] batches) is delegated to the original wasm kernel.
  const c = { name: 'broadcast', a: [2, 1, 3, 4], b: [1, 3, 4, 5], tA: false, tB: false };
  const ref = await cpuReference(c, 5);
  const got = tf.tidy(() => tf.matMul(tf.tensor(values(24, 5), c.a), tf.tensor(values(60, 6), c.b)).dataSync());
  assert.ok(relErr(got, ref.out) <= 1e-4);
  // Many kernel calls growing the heap: offsets must be re-read after each allocation.
  const big = tf.tidy(() => {
    const x = tf.tensor2d(values(300 * 200, 9), [300, 200]);
    let y: tf.Tensor = x;
    for (let i = 0; i < 5; i++) y = matMul(x, matMul(x, y, true, false)).mul(1e-3); // [300, 200]
    return y.shape.join() === '300,200' ? y.isFinite().all().dataSync()[0] : -1;
  });
  assert.equal(big, 1);
});

test('tf.fused.matMul (bias, activations, transposes) is correct on each path', async () => {
  // tfjs-backend-wasm 4.22's own fused kernel is wrong with transposes; both paths fix it.
  const paths: ('wasm' | 'blas')[] = addon && !forcedWasm ? ['blas', 'wasm'] : ['wasm'];
  for (const p of paths) {
    await setMatmulPath(p);
    for (const activation of ['linear', 'relu', 'elu', 'sigmoid'] as const) {
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const a = values(7 * 13, 1);
        const b = values(13 * 5, 2);
        const bias = values(5, 3);
        const before = tf.memory().numTensors;
        const got = tf.tidy(() => tf.fused.matMul({
          a: tf.tensor2d(a, tA ? [13, 7] : [7, 13]), b: tf.tensor2d(b, tB ? [5, 13] : [13, 5]),
          transposeA: tA, transposeB: tB, bias: tf.tensor1d(bias), activation,
        }).dataSync());
        assert.equal(tf.memory().numTensors, before);
        const plain = naiveMatMul(a, tA ? 13 : 7, tA ? 7 : 13, b, tB ? 5 : 13, tB ? 13 : 5, tA, tB);
        const want = plain.map((v, i) => {
          const x = v + bias[i % 5];
          if (activation === 'linear') return x;
          if (activation === 'relu') return Math.max(0, x);
          if (activation === 'elu') return x > 0 ? x : Math.exp(x) - 1;
          return 1 / (1 + Math.exp(-x));
        });
        assert.ok(relErr(got, want) <= 1e-4, `${p} fused ${activation} tA=${tA} tB=${tB}: ${relErr(got, want)}`);
      }
    }
  }
  await setMatmulPath(initial.matmulPath === 'wasm+blas' ? 'blas' : 'wasm');
});
