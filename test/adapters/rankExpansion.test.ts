/**
 * MoR's rank-expansion op: the native element-wise kernels against the tfjs ops, and the op's
 * value and gradients (all five inputs) against autodiff of the per-expert formula, on the
 * BLAS path and on the pure-wasm path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, setMatmulPath, tf } from '../../src/backend/tf.ts';
import { blasActive } from '../../src/backend/blas.ts';
import { rankKernelsRegistered } from '../../src/backend/rankKernels.ts';
import { rankExpansion, rankExpansionNative, rankExpansionOps, rankExpansionParts } from '../../src/adapters/rankExpansion.ts';
import { Rng } from '../../src/util/rng.ts';
import { leakCheck, relDiff, randTensor } from './helpers.ts';

const initial = await initBackend({ announce: false });

interface Inputs {
  h: tf.Tensor2D;
  g: tf.Tensor2D;
  om: tf.Tensor2D;
  b: tf.Tensor2D;
  omegaB: tf.Tensor2D;
}

function inputs(rng: Rng, t: number, n: number, r: number, dOut: number, gRows: number): Inputs {
  return {
    h: randTensor(rng, [t, r]) as tf.Tensor2D,
    g: tf.softmax(randTensor(rng, [gRows, n])) as tf.Tensor2D,
    om: randTensor(rng, [n, r]) as tf.Tensor2D,
    b: randTensor(rng, [dOut, r], 0.5) as tf.Tensor2D,
    omegaB: randTensor(rng, [n, dOut]) as tf.Tensor2D,
  };
}

/** The per-expert formula `sum_i g_i ⊙ Omega_B[i] ⊙ ((h ⊙ om_i) Bᵀ)` in plain tfjs ops (autodiff). */
function oracle({ h, g, om, b, omegaB }: Inputs): tf.Tensor2D {
  let acc: tf.Tensor = tf.zeros([h.shape[0], b.shape[0]]);
  for (let i = 0; i < om.shape[0]; i++) {
    const expert = tf.mul(tf.matMul(tf.mul(h, om.slice([i, 0], [1, -1])), b, false, true), omegaB.slice([i, 0], [1, -1]));
    acc = tf.add(acc, tf.mul(expert, g.slice([0, i], [-1, 1])));
  }
  return acc as tf.Tensor2D;
}

/** Value and gradients of sum(f(inputs) * w) with respect to all five inputs. */
function valueAndGrads(f: (x: Inputs) => tf.Tensor2D, x: Inputs, w: tf.Tensor): tf.Tensor[] {
  const keys = ['h', 'g', 'om', 'b', 'omegaB'] as const;
  const grad = tf.grads((...xs: tf.Tensor[]) => {
    const named = Object.fromEntries(keys.map((k, i) => [k, xs[i]])) as unknown as Inputs;
    return tf.sum(tf.mul(f(named), w));
  });
  return [f(x), ...grad(keys.map((k) => x[k]))];
}

const SHAPES = [
  { t: 7, n: 3, r: 4, dOut: 5 },
  { t: 1, n: 1, r: 1, dOut: 1 },
  { t: 13, n: 8, r: 2, dOut: 9 },
  { t: 4, n: 2, r: 6, dOut: 3 },
  // out*N*r >= 2^20: the native [out, N r] passes split over the threads.
  { t: 6, n: 8, r: 32, dOut: 4100 },
];

test('native kernels equal the tfjs ops (values and gradient parts, routing rows T or 1)', () => {
  if (!rankKernelsRegistered()) {
    // No OpenBLAS addon on this machine: the op must use the tfjs ops.
    assert.equal(initial.matmulPath, 'wasm');
    assert.equal(rankExpansionParts(), rankExpansionOps);
    return;
  }
  const rng = new Rng(31);
  const { leaked } = leakCheck(() => {
    for (const { t, n, r, dOut } of SHAPES) {
      for (const gRows of [t, 1]) {
        tf.tidy(() => {
          const x = inputs(rng, t, n, r, dOut, gRows);
          const dz = randTensor(rng, [t, n * r]) as tf.Tensor2D;
          const dbexp = randTensor(rng, [dOut, n * r]) as tf.Tensor2D;
          const pairs: [tf.Tensor, tf.Tensor, string][] = [
            [rankExpansionNative.z(x.h, x.g, x.om), rankExpansionOps.z(x.h, x.g, x.om), 'z'],
            [rankExpansionNative.bexp(x.b, x.omegaB), rankExpansionOps.bexp(x.b, x.omegaB), 'bexp'],
          ];
          const zg = [rankExpansionNative.zGrad(dz, x.h, x.g, x.om), rankExpansionOps.zGrad(dz, x.h, x.g, x.om)];
          ['dh', 'dg', 'dom'].forEach((name, i) => pairs.push([zg[0][i], zg[1][i], name]));
          const bg = [rankExpansionNative.bexpGrad(dbexp, x.b, x.omegaB), rankExpansionOps.bexpGrad(dbexp, x.b, x.omegaB)];
          ['db', 'domegaB'].forEach((name, i) => pairs.push([bg[0][i], bg[1][i], name]));
          for (const [native, ops, name] of pairs) {
            assert.deepEqual(native.shape, ops.shape, `${name} shape`);
            const e = relDiff(native, ops);
            assert.ok(e <= 1e-6, `${name} [T=${t} N=${n} r=${r} out=${dOut} gRows=${gRows}]: ${e}`);
          }
        });
      }
    }
  });
  assert.equal(leaked, 0);
});

for (const path of ['blas', 'wasm'] as const) {
  test(`rankExpansion value and gradients of all five inputs equal autodiff of the per-expert formula (${path} path)`, async () => {
    if (path === 'blas' && !rankKernelsRegistered()) {
      // Without the addon the "blas" request falls back; the wasm run below covers the ops.
      assert.equal(initial.matmulPath, 'wasm');
      return;
    }
    await setMatmulPath(path);
    try {
      assert.equal(rankExpansionParts(), path === 'blas' ? rankExpansionNative : rankExpansionOps);
      const rng = new Rng(path === 'blas' ? 7 : 8);
      for (const { t, n, r, dOut } of SHAPES) {
        for (const gRows of [t, 1]) {
          tf.tidy(() => {
            const x = inputs(rng, t, n, r, dOut, gRows);
            const w = randTensor(rng, [t, dOut]);
            const got = valueAndGrads((v) => rankExpansion(v.h, v.g, v.om, v.b, v.omegaB), x, w);
            const want = valueAndGrads(oracle, x, w);
            ['value', 'dh', 'dg', 'dom', 'db', 'domegaB'].forEach((name, i) => {
              assert.deepEqual(got[i].shape, want[i].shape, `${name} shape`);
              const e = relDiff(got[i], want[i]);
              assert.ok(e <= 1e-5, `${name} [T=${t} N=${n} r=${r} out=${dOut} gRows=${gRows}]: ${e}`);
            });
          });
        }
      }
    } finally {
      await setMatmulPath(initial.matmulPath === 'wasm+blas' ? 'blas' : 'wasm');
    }
    assert.equal(blasActive(), initial.matmulPath === 'wasm+blas');
  });
}

test('rankExpansion: no tensors leak across forward+backward steps; bad shapes are an error', () => {
  const rng = new Rng(3);
  const x = inputs(rng, 6, 3, 2, 5, 6);
  const vars = Object.values(x).map((t) => tf.variable(t));
  const step = () => {
    const { value, grads } = tf.variableGrads(() => tf.sum(rankExpansion(...(vars as unknown as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D]))), vars);
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) step();
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => rankExpansion(x.h, x.g, x.om, x.b, x.omegaB.slice([0, 0], [-1, 4]) as tf.Tensor2D), /rankExpansion: shapes/);
  tf.dispose([...vars, ...Object.values(x)]);
});
