/**
 * The fused MoR op (router, softmax and rank expansion in one native kernel each way): its two
 * outputs and the gradients of all its inputs against autodiff of the per-expert formula in
 * plain tfjs ops, and against the composed op it replaces (projectWithRouter + routerSoftmax +
 * rankExpansion); which layers take it; no leaks; bad calls refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, setMatmulPath, tf } from '../../src/backend/tf.ts';
import { MOR_LAYER, morLayerKernelsRegistered } from '../../src/backend/morLayerKernels.ts';
import { morFused, morFusedAvailable, type MorFusedParams } from '../../src/adapters/morFused.ts';
import { rankExpansion } from '../../src/adapters/rankExpansion.ts';
import { projectWithRouter, routerSoftmax } from '../../src/routing/router.ts';
import { MorLinear, type MorLayerSpec } from '../../src/adapters/mor.ts';
import { Rng } from '../../src/util/rng.ts';
import { leakCheck, relDiff, randLinear, randTensor } from './helpers.ts';

const initial = await initBackend({ announce: false });
const native = morLayerKernelsRegistered();

const KEYS = ['x', 'y', 'a', 'wg', 'omegaA', 'b', 'omegaB', 'bias'] as const;
type Key = (typeof KEYS)[number];
type Inputs = Partial<Record<Key, tf.Tensor>>;

interface Shape {
  t: number;
  dIn: number;
  dOut: number;
  r: number;
  n: number;
}

const SHAPES: Shape[] = [
  { t: 7, dIn: 5, dOut: 6, r: 3, n: 4 },
  { t: 1, dIn: 1, dOut: 1, r: 1, n: 1 },
  { t: 13, dIn: 9, dOut: 11, r: 2, n: 8 },
  // the rank-expansion products (over ~4 MFLOP) on several threads; the router's on one
  { t: 128, dIn: 96, dOut: 520, r: 16, n: 8 },
  // a longer batch: the rank-expansion products split over the threads, by rows
  { t: 600, dIn: 24, dOut: 1500, r: 16, n: 8 },
  // out * N * r >= 2^20: the [out, N r] loops split over the threads
  { t: 4, dIn: 16, dOut: 4100, r: 32, n: 8 },
];

function inputs(rng: Rng, { t, dIn, dOut, r, n }: Shape, bias: boolean): Inputs {
  const x: Inputs = {
    x: randTensor(rng, [t, dIn]),
    y: randTensor(rng, [t, dOut]),
    a: randTensor(rng, [r, dIn], 0.5),
    wg: randTensor(rng, [n, dIn]),
    omegaA: randTensor(rng, [n, r]),
    b: randTensor(rng, [dOut, r], 0.5),
    omegaB: randTensor(rng, [n, dOut]),
  };
  if (bias) x.bias = randTensor(rng, [n]);
  return x;
}

const params = (v: Inputs): MorFusedParams => ({ a: v.a!, wg: v.wg!, bias: v.bias, omegaA: v.omegaA!, b: v.b!, omegaB: v.omegaB! });

/** The per-expert formula in plain tfjs ops: `y + s sum_i g_i Omega_B[i] ⊙ ((A x ⊙ Omega_A[i]) Bᵀ)`, g = softmax(W_g x + bias). */
function oracle(v: Inputs, s: number): { out: tf.Tensor; g: tf.Tensor } {
  const logits = tf.matMul(v.x!, v.wg!, false, true);
  const g = tf.softmax(v.bias ? tf.add(logits, v.bias) : logits);
  const h = tf.matMul(v.x!, v.a!, false, true);
  let acc: tf.Tensor = tf.zeros([v.x!.shape[0], v.b!.shape[0]]);
  for (let i = 0; i < v.omegaA!.shape[0]; i++) {
    const expert = tf.mul(tf.matMul(tf.mul(h, v.omegaA!.slice([i, 0], [1, -1])), v.b!, false, true), v.omegaB!.slice([i, 0], [1, -1]));
    acc = tf.add(acc, tf.mul(expert, g.slice([0, i], [-1, 1])));
  }
  return { out: tf.add(v.y!, tf.mul(acc, s)), g };
}

/** The composed ops the fused one replaces (mor.ts without it): one [A; W_g] product, softmax, rank expansion, sum. */
function composed(v: Inputs, s: number): { out: tf.Tensor; g: tf.Tensor } {
  const { h, logits } = projectWithRouter(v.x as tf.Tensor2D, v.a!, v.wg!);
  const g = routerSoftmax(logits, v.bias);
  return { out: tf.add(v.y!, rankExpansion(h, g, tf.mul(v.omegaA!, s) as tf.Tensor2D, v.b as tf.Tensor2D, v.omegaB as tf.Tensor2D)), g };
}

/** out, g, and the gradients of sum(out * w1) + sum(g * w2) (a loss reading g as a load-balance loss does). */
function valueAndGrads(f: (v: Inputs) => { out: tf.Tensor; g: tf.Tensor }, v: Inputs, w1: tf.Tensor, w2: tf.Tensor): Map<string, tf.Tensor> {
  const keys = KEYS.filter((k) => v[k] !== undefined);
  const out = new Map<string, tf.Tensor>();
  const grad = tf.grads((...xs: tf.Tensor[]) => {
    const r = f(Object.fromEntries(keys.map((k, i) => [k, xs[i]])) as Inputs);
    return tf.add(tf.sum(tf.mul(r.out, w1)), tf.sum(tf.mul(r.g, w2)));
  });
  const r = f(v);
  out.set('out', r.out);
  out.set('g', r.g);
  grad(keys.map((k) => v[k]!)).forEach((d, i) => out.set(`d${keys[i]}`, d));
  return out;
}

test('morFused: outputs and the gradients of every input equal autodiff of the per-expert formula, and the composed op', () => {
  if (!native) {
    // No addon: MoR composes tfjs ops (covered by mor.test.ts and rankExpansion.test.ts).
    assert.equal(initial.matmulPath, 'wasm');
    assert.equal(morFusedAvailable(), false);
    return;
  }
  const rng = new Rng(41);
  const s = 1.75;
  const { leaked } = leakCheck(() => {
    for (const shape of SHAPES) {
      for (const bias of [false, true]) {
        tf.tidy(() => {
          const v = inputs(rng, shape, bias);
          const w1 = randTensor(rng, [shape.t, shape.dOut]);
          const w2 = randTensor(rng, [shape.t, shape.n]);
          const got = valueAndGrads((u) => morFused(u.x as tf.Tensor2D, u.y as tf.Tensor2D, params(u), s), v, w1, w2);
          const want = valueAndGrads((u) => oracle(u, s), v, w1, w2);
          const near = valueAndGrads((u) => composed(u, s), v, w1, w2);
          const where = `[T=${shape.t} in=${shape.dIn} out=${shape.dOut} r=${shape.r} N=${shape.n} bias=${bias}]`;
          assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), where);
          for (const [name, t] of got) {
            assert.deepEqual(t.shape, want.get(name)!.shape, `${name} shape ${where}`);
            const e = relDiff(t, want.get(name)!);
            assert.ok(e <= 1e-5, `${name} vs the formula ${where}: ${e}`);
            // Same products and loops as the composed op; only the softmax's exp differs.
            const c = relDiff(t, near.get(name)!);
            assert.ok(c <= 2e-6, `${name} vs the composed op ${where}: ${c}`);
          }
        });
      }
    }
  });
  assert.equal(leaked, 0);
});

test('morFused: no tensors leak across training steps; bad shapes and attributes are refused by name', () => {
  if (!native) return assert.equal(initial.matmulPath, 'wasm');
  const rng = new Rng(5);
  const v = inputs(rng, SHAPES[0], true);
  const names = ['a', 'wg', 'omegaA', 'b', 'omegaB', 'bias'] as const;
  const vars = names.map((k) => tf.variable(v[k]!));
  const p = Object.fromEntries(names.map((k, i) => [k, vars[i]])) as unknown as MorFusedParams;
  const x = v.x as tf.Tensor2D;
  const y = v.y as tf.Tensor2D;
  const step = () => {
    const { value, grads } = tf.variableGrads(() => {
      const r = morFused(x, y, p, 2);
      return tf.add(tf.sum(r.out), tf.sum(tf.square(r.g)));
    }, vars);
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) step();
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => morFused(x, y, { ...p, omegaB: v.omegaB!.slice([0, 0], [-1, 2]) }, 2), /MorLayer: omegaB is \[4,2\], expected \[4,6\]/);
  assert.throws(() => morFused(x, y, { ...p, bias: tf.zeros([3]) }, 2), /MorLayer: bias is \[3\]/);
  assert.throws(() => morFused(x, y.slice([0, 0], [-1, 5]) as tf.Tensor2D, p, 2), /MorLayer: y is \[7,5\], expected \[7,6\]/);
  assert.throws(() => morFused(x, y, p, Number.NaN), /MorLayer: attribute scaling must be a finite number/);
  tf.dispose([...vars, ...Object.values(v)]);
});

/** Kernel names one training forward + backward of a MoR layer with these settings runs. */
async function kernelsOfLayer(over: Partial<MorLayerSpec>): Promise<string[]> {
  const rng = new Rng(2);
  const layer = new MorLinear(randLinear(rng, 5, 6), 'm');
  layer.addAdapter('default', {
    r: 2, alpha: 4, dropout: 0, useRslora: false, init: 'gaussian', numExperts: 3, routerMode: 'softmax', routerInitStd: 0.5,
    routerBias: false, omegaInit: 'ones', omegaNoiseStd: 0, loadBalanceCoef: 0.1, seed: 1, ...over,
  });
  layer.setActiveAdapter('default');
  const x = randTensor(rng, [4, 6]);
  const info = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => tf.sum(layer.forward(x, { training: true, auxLosses: [] })) as tf.Scalar);
    tf.dispose([value, ...Object.values(grads)]);
  });
  x.dispose();
  layer.dispose();
  return info.kernelNames;
}

test('MoR layers take the fused op on the native path with a learned router and no dropout, the composed ops otherwise', async () => {
  for (const path of ['blas', 'wasm'] as const) {
    if (path === 'blas' && !native) continue;
    await setMatmulPath(path);
    try {
      const fusedWith = async (over: Partial<MorLayerSpec>) => (await kernelsOfLayer(over)).includes(MOR_LAYER);
      assert.equal(await fusedWith({}), path === 'blas', `softmax router (${path})`);
      assert.equal(await fusedWith({ routerMode: 'balanced', routerBias: true }), path === 'blas', `balanced, bias (${path})`);
      assert.equal(await fusedWith({ dropout: 0.1 }), false, `dropout (${path})`);
      assert.equal(await fusedWith({ routerMode: 'uniform' }), false, `uniform (${path})`);
    } finally {
      await setMatmulPath(initial.matmulPath === 'wasm+blas' ? 'blas' : 'wasm');
    }
  }
});
