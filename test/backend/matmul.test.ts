/**
 * The project matmul against independent references: tfjs's CPU backend with tf.matMul's
 * built-in gradient, a float64 naive product, and finite differences. Every check runs on
 * the active path (BLAS when built, pure wasm under MOR_MATMUL=wasm) and, when BLAS is
 * active, again on pure wasm in the same process.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backendInfo, initBackend, setMatmulPath, tf } from '../../src/backend/tf.ts';
import { matMul, matMul2d } from '../../src/backend/matmul.ts';
import { type Case, cpuReference, naiveMatMul, projectResult, relErr, sizeOf, values } from './reference.ts';

const initial = await initBackend({ announce: false });
const paths: ('blas' | 'wasm')[] = initial.matmulPath === 'wasm+blas' ? ['blas', 'wasm'] : ['wasm'];
after(async () => {
  await setMatmulPath(initial.matmulPath === 'wasm+blas' ? 'blas' : 'wasm');
});

const TT: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

/** `[..., M, K] x [..., K, N]` case with operands stored as the flags require. */
function mk(name: string, batchA: number[], batchB: number[], m: number, k: number, n: number, tA: boolean, tB: boolean): Case {
  return {
    name: `${name} tA=${tA} tB=${tB}`,
    a: [...batchA, ...(tA ? [k, m] : [m, k])],
    b: [...batchB, ...(tB ? [n, k] : [k, n])],
    tA,
    tB,
  };
}

const cases: Case[] = [];
for (const [tA, tB] of TT) {
  cases.push(mk('primes 7x13x5', [], [], 7, 13, 5, tA, tB));
  cases.push(mk('row 1xN', [], [], 1, 9, 6, tA, tB));
  cases.push(mk('column Nx1', [], [], 6, 9, 1, tA, tB));
  cases.push(mk('inner 1', [], [], 4, 1, 3, tA, tB));
  cases.push(mk('batched 3-D', [3], [3], 7, 13, 5, tA, tB));
  cases.push(mk('attention 4-D [B,H,T,D]', [2, 3], [2, 3], 5, 4, 6, tA, tB));
  cases.push(mk('2-D b broadcast over 4-D a', [2, 3], [], 5, 7, 4, tA, tB));
  cases.push(mk('2-D a broadcast over 3-D b', [], [3], 5, 7, 4, tA, tB));
  cases.push(mk('batch broadcast [2,1]x[1,3]', [2, 1], [1, 3], 3, 4, 5, tA, tB));
}

for (const path of paths) {
  describe(`project matmul on ${path}`, () => {
    test('forward and gradients equal the tfjs CPU backend within 1e-4', async () => {
      await setMatmulPath(path);
      for (const [i, c] of cases.entries()) {
        const ref = await cpuReference(c, 100 + i);
        const before = tf.memory().numTensors;
        const got = projectResult(c, 100 + i, matMul);
        assert.equal(tf.memory().numTensors, before, `${c.name}: tensors leaked`);
        assert.deepEqual(got.shape, ref.shape, c.name);
        assert.ok(relErr(got.out, ref.out) <= 1e-4, `${c.name}: forward rel err ${relErr(got.out, ref.out)}`);
        assert.ok(relErr(got.da, ref.da) <= 1e-4, `${c.name}: dA rel err ${relErr(got.da, ref.da)}`);
        assert.ok(relErr(got.db, ref.db) <= 1e-4, `${c.name}: dB rel err ${relErr(got.db, ref.db)}`);
      }
    });

    test('matMul2d equals a float64 naive product (odd and larger shapes)', async () => {
      await setMatmulPath(path);
      for (const [tA, tB] of TT) {
        for (const [m, k, n] of [[1, 17, 1], [31, 67, 29], [64, 128, 96]]) {
          const ar = tA ? k : m, ac = tA ? m : k, br = tB ? n : k, bc = tB ? k : n;
          const av = values(ar * ac, m + k);
          const bv = values(br * bc, n + 7);
          const want = naiveMatMul(av, ar, ac, bv, br, bc, tA, tB);
          const got = tf.tidy(() => matMul2d(tf.tensor2d(av, [ar, ac]), tf.tensor2d(bv, [br, bc]), tA, tB).dataSync());
          assert.ok(relErr(got, want) <= 1e-4, `${m}x${k}x${n} tA=${tA} tB=${tB}: ${relErr(got, want)}`);
        }
      }
    });

    test('gradients agree with central finite differences of a nonlinear loss', async () => {
      await setMatmulPath(path);
      const h = 1e-2;
      for (const c of [mk('fd 2-D', [], [], 3, 4, 2, false, false), mk('fd 2-D', [], [], 3, 4, 2, true, true),
        mk('fd 2-D', [], [], 3, 4, 2, false, true), mk('fd batched', [2], [2], 2, 3, 2, true, false),
        mk('fd shared b', [2], [], 2, 3, 2, true, true)]) {
        const av = values(sizeOf(c.a), 7);
        const bv = values(sizeOf(c.b), 8);
        // loss = sum(tanh(C) * r): the gradient chain is non-trivial, not a bilinear identity.
        const loss = (x: Float32Array, y: Float32Array): number => tf.tidy(() => {
          const out = matMul(tf.tensor(x, c.a), tf.tensor(y, c.b), c.tA, c.tB);
          return out.tanh().mul(tf.tensor(values(out.size, 9), out.shape)).sum().dataSync()[0];
        });
        const [ga, gb] = tf.tidy(() => {
          const f = (x: tf.Tensor, y: tf.Tensor) => {
            const out = matMul(x, y, c.tA, c.tB);
            return out.tanh().mul(tf.tensor(values(out.size, 9), out.shape)).sum();
          };
          return tf.grads(f)([tf.tensor(av, c.a), tf.tensor(bv, c.b)]).map((g) => g.dataSync());
        });
        for (const [which, v, g] of [['a', av, ga], ['b', bv, gb]] as const) {
          for (let i = 0; i < v.length; i++) {
            const plus = Float32Array.from(v);
            const minus = Float32Array.from(v);
            plus[i] += h;
            minus[i] -= h;
            const fd = which === 'a' ? (loss(plus, bv) - loss(minus, bv)) / (2 * h) : (loss(av, plus) - loss(av, minus)) / (2 * h);
            assert.ok(Math.abs(fd - g[i]) <= 2e-3 + 1e-2 * Math.abs(fd), `${c.name} d${which}[${i}]: fd ${fd} vs ${g[i]}`);
          }
        }
      }
    });

    test('a frozen operand costs no gradient product (lazy per-input gradients)', async () => {
      await setMatmulPath(path);
      const x = tf.tensor2d(values(8 * 16, 1), [8, 16]);
      const w = tf.variable(tf.tensor2d(values(4 * 16, 2), [4, 16]));
      const products = async (f: () => tf.Scalar, vars: tf.Variable[]) => {
        const prof = await tf.profile(() => {
          const { value, grads } = tf.variableGrads(f, vars);
          value.dispose();
          tf.dispose(grads);
        });
        return prof.kernels.filter((k) => k.name === 'BatchMatMul').length;
      };
      const frozenX = await products(() => matMul(x, w, false, true).square().sum() as tf.Scalar, [w]);
      const bothTrainable = tf.variable(x);
      const both = await products(() => matMul(bothTrainable, w, false, true).square().sum() as tf.Scalar, [bothTrainable, w]);
      assert.equal(frozenX, 2, 'forward + dW only');
      assert.equal(both, 3, 'forward + dX + dW');
      tf.dispose([x, w, bothTrainable]);
    });

    test('no tensor leak over 100 forward+backward steps', async () => {
      await setMatmulPath(path);
      const w1 = tf.variable(tf.tensor2d(values(16 * 12, 3), [16, 12]));
      const w2 = tf.variable(tf.tensor2d(values(16 * 12, 4), [16, 12]));
      const x = tf.tensor3d(values(2 * 5 * 12, 5), [2, 5, 12]);
      const step = () => {
        const { value, grads } = tf.variableGrads(() => {
          const h = matMul(x, w1, false, true).relu(); // [2, 5, 16]
          const att = matMul(h, h, false, true); // [2, 5, 5]
          const gram = matMul(h, h, true, false); // [2, 16, 16]
          return matMul(matMul(matMul(att, h), gram), w2).square().mean() as tf.Scalar; // [2, 5, 12]
        }, [w1, w2]);
        value.dispose();
        tf.dispose(grads);
      };
      step();
      const before = tf.memory().numTensors;
      for (let i = 0; i < 100; i++) step();
      assert.equal(tf.memory().numTensors, before);
      tf.dispose([w1, w2, x]);
    });
  });
}

test('bad shapes are rejected with the shapes in the message', () => {
  assert.throws(() => matMul(tf.zeros([2, 3]), tf.zeros([4, 5])), /\[2,3\].*\[4,5\]/);
  assert.throws(() => matMul(tf.zeros([3]), tf.zeros([3, 2])), /rank >= 2/);
  assert.throws(() => matMul(tf.zeros([2, 2, 3]), tf.zeros([3, 3, 2])), /broadcast|Operands could not/i);
});

test('initBackend reports the active path', () => {
  const info = backendInfo();
  assert.equal(info.backend, 'wasm');
  assert.ok(info.matmulPath === 'wasm' || info.matmulPath === 'wasm+blas');
  if (info.matmulPath === 'wasm') assert.ok(info.blasReason && info.blasReason.length > 0);
});
