/** MoR: rank-expansion forward vs the per-expert oracle, reduction to LoRA, routing, merging. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { Rng } from '../../src/util/rng.ts';
import { UserError } from '../../src/errors.ts';
import { Linear } from '../../src/nn/linear.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { MorLinear, morDeltaFast, morDeltaNaive, type MorLayerSpec } from '../../src/adapters/mor.ts';
import { LoraLinear } from '../../src/adapters/lora.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { RoutingStats, meanRoutingVectors } from '../../src/routing/stats.ts';
import { mergeWithRouting, setFixedRouting } from '../../src/routing/fixedRouting.ts';
import { ToyModel, layerVsReferenceGrads, leakCheck, maxAbsDiff, randLinear, randTensor } from './helpers.ts';

await initBackend();

function spec(over: Partial<MorLayerSpec> = {}): MorLayerSpec {
  return {
    r: 4, alpha: 8, dropout: 0, useRslora: false, init: false, numExperts: 3, routerMode: 'softmax',
    routerInitStd: 0.5, routerBias: false, omegaInit: 'ones+noise', omegaNoiseStd: 0.5, loadBalanceCoef: 0.1, seed: 1, ...over,
  };
}

/** Host softmax rows of x W^T: independent of the code under test. */
function hostSoftmax(x: Float32Array, w: Float32Array, t: number, dIn: number, n: number): Float64Array {
  const g = new Float64Array(t * n);
  for (let i = 0; i < t; i++) {
    let mx = -Infinity;
    for (let e = 0; e < n; e++) {
      let s = 0;
      for (let k = 0; k < dIn; k++) s += x[i * dIn + k] * w[e * dIn + k];
      g[i * n + e] = s;
      mx = Math.max(mx, s);
    }
    let z = 0;
    for (let e = 0; e < n; e++) z += (g[i * n + e] = Math.exp(g[i * n + e] - mx));
    for (let e = 0; e < n; e++) g[i * n + e] /= z;
  }
  return g;
}

test('MoR rank-expansion forward equals the per-expert oracle on random shapes (<= 1e-5)', () => {
  const rng = new Rng(2024);
  const { leaked } = leakCheck(() => {
    for (let trial = 0; trial < 8; trial++) {
      const t = 1 + rng.int(9);
      const dIn = 1 + rng.int(13);
      const dOut = 1 + rng.int(11);
      const r = 1 + rng.int(6);
      const n = 1 + rng.int(6);
      tf.tidy(() => {
        const x = randTensor(rng, [t, dIn], 0.5) as tf.Tensor2D;
        const p = {
          a: randTensor(rng, [r, dIn], 0.4), b: randTensor(rng, [dOut, r], 0.4),
          omegaA: randTensor(rng, [n, r]), omegaB: randTensor(rng, [n, dOut]),
        };
        const g = tf.softmax(randTensor(rng, [t, n])) as tf.Tensor2D;
        const fast = morDeltaFast(x, p, g, 1.7);
        const naive = morDeltaNaive(x, p, g, 1.7);
        assert.deepEqual(fast.shape, [t, dOut]);
        const d = maxAbsDiff(fast, naive);
        assert.ok(d <= 1e-5, `trial ${trial} [${t},${dIn}->${dOut}] r=${r} N=${n}: ${d}`);
        // A fixed routing row [1, N] broadcasts over the tokens.
        const g1 = tf.softmax(randTensor(rng, [1, n])) as tf.Tensor2D;
        assert.ok(maxAbsDiff(morDeltaFast(x, p, g1, 0.5), morDeltaNaive(x, p, g1, 0.5)) <= 1e-5);
      });
    }
  });
  assert.equal(leaked, 0);
});

test('MoR layer forward = base + oracle delta with the router softmax computed on the host', () => {
  const rng = new Rng(5);
  const base = randLinear(rng, 7, 6, true);
  const layer = new MorLinear(base, 'm');
  layer.addAdapter('default', spec());
  layer.setActiveAdapter('default');
  const s = layer.state('default');
  const x = randTensor(rng, [2, 3, 6]); // [B, T, in]: flattened inside
  const y = layer.forward(x);
  assert.deepEqual(y.shape, [2, 3, 7]);
  const g = hostSoftmax(x.dataSync() as Float32Array, s.tensors.get('mor_router.weight')!.dataSync() as Float32Array, 6, 6, 3);
  const expected = tf.tidy(() => {
    const x2 = x.reshape([6, 6]) as tf.Tensor2D;
    const delta = morDeltaNaive(x2, s.params, tf.tensor2d(Float32Array.from(g), [6, 3]), 8 / 4);
    return tf.add(base.forward(x2), delta).reshape([2, 3, 7]);
  });
  assert.ok(maxAbsDiff(y, expected) <= 1e-5);
  tf.dispose([x, y, expected]);
  layer.dispose();
});

test('MoR layer gradients (one [A; W_g] product without dropout) equal autodiff of base + oracle delta', () => {
  for (const routerBias of [false, true]) {
    const rng = new Rng(routerBias ? 12 : 11);
    const base = randLinear(rng, 7, 6, true);
    const layer = new MorLinear(base, 'm');
    layer.addAdapter('default', spec({ routerBias, numExperts: 4 }));
    layer.setActiveAdapter('default');
    const s = layer.state('default');
    const diffs = layerVsReferenceGrads(rng, layer, (x) => {
      let logits = tf.matMul(x, s.tensors.get('mor_router.weight')!, false, true);
      if (routerBias) logits = tf.add(logits, s.tensors.get('mor_router.bias')!);
      return tf.add(base.forward(x), morDeltaNaive(x, s.params, tf.softmax(logits) as tf.Tensor2D, s.scaling));
    });
    for (const { name, diff } of diffs) assert.ok(diff <= 1e-5, `${name}: ${diff}`);
  }
});

test('MoR with N = 1 and omegas = 1 equals LoRA with the same A, B', () => {
  const rng = new Rng(8);
  const w = randTensor(rng, [5, 4]) as tf.Tensor2D;
  const mor = new MorLinear(new Linear(tf.clone(w)), 'p');
  mor.addAdapter('default', spec({ numExperts: 1, omegaInit: 'ones', r: 3, alpha: 5 }));
  mor.setActiveAdapter('default');
  const lora = new LoraLinear(new Linear(w), 'p');
  lora.addAdapter('default', { r: 3, alpha: 5, dropout: 0, useRslora: false, init: false, seed: 9 });
  lora.setActiveAdapter('default');
  const ms = mor.state('default').tensors;
  const ls = lora.state('default').tensors;
  ls.get('lora_A.weight')!.assign(ms.get('mor_A.weight')!);
  ls.get('lora_B.weight')!.assign(ms.get('mor_B.weight')!);
  const x = randTensor(rng, [6, 4]);
  const a = mor.forward(x);
  const b = lora.forward(x);
  assert.ok(maxAbsDiff(a, b) <= 1e-6, `${maxAbsDiff(a, b)}`);
  tf.dispose([x, a, b]);
  mor.dispose();
  lora.dispose();
});

test('mergeWithRouting(g) equals the forward with the router pinned to g; learned router refuses merge()', () => {
  const before = tf.memory().numTensors;
  const model = new ToyModel(8, 12);
  const peft = getPeftModel(model, {
    kind: 'mor', r: 3, numExperts: 4, init: false, omegaInit: 'ones+noise', omegaNoiseStd: 0.4, routerInitStd: 0.5,
  });
  const x = randTensor(new Rng(3), [5, 8]) as tf.Tensor2D;
  const learned = model.forward(x);
  assert.throws(() => peft.merge(), (e: Error) => e instanceof UserError && /learned router/.test(e.message));
  const g = [0.1, 0.2, 0.3, 0.4];
  setFixedRouting(peft, g);
  const pinned = model.forward(x);
  assert.ok(maxAbsDiff(pinned, learned) > 1e-4, 'pinning must change the output');
  setFixedRouting(peft, undefined);
  mergeWithRouting(peft, g);
  const merged = model.forward(x);
  assert.ok(maxAbsDiff(merged, pinned) <= 1e-4, `${maxAbsDiff(merged, pinned)}`);
  for (const [, l] of peft.deltaLayers()) assert.equal(l.mergedAdapter, 'default');
  peft.unmerge();
  const back = model.forward(x);
  assert.equal(maxAbsDiff(back, learned), 0);
  assert.throws(() => mergeWithRouting(peft, [0.5, 0.5]), /4 \(numExperts\)/);
  const plain = peft.mergeAndUnload({ routing: g });
  const final = plain.forward(x);
  assert.ok(maxAbsDiff(final, pinned) <= 1e-4);
  tf.dispose([x, learned, pinned, merged, back, final]);
  plain.namedParameters().forEach(([, p]) => p.dispose());
  assert.equal(tf.memory().numTensors, before);
});

test('balanced router: load-balance loss N * sum f_i P_i over real tokens, pushed while training only', () => {
  const rng = new Rng(17);
  const layer = new MorLinear(randLinear(rng, 5, 6), 'l');
  layer.addAdapter('default', spec({ routerMode: 'balanced', loadBalanceCoef: 0.25, numExperts: 3, routerInitStd: 1 }));
  layer.setActiveAdapter('default');
  const t = 7;
  const x = randTensor(rng, [t, 6]);
  const maskArr = [1, 1, 0, 1, 1, 0, 1];
  const tokenMask = tf.tensor1d(maskArr, 'float32');
  const ctx: ForwardContext = { training: true, auxLosses: [], tokenMask };
  layer.forward(x, ctx).dispose();
  assert.equal(ctx.auxLosses.length, 1);
  const g = hostSoftmax(x.dataSync() as Float32Array, layer.state('default').tensors.get('mor_router.weight')!.dataSync() as Float32Array, t, 6, 3);
  const f = [0, 0, 0];
  const p = [0, 0, 0];
  let real = 0;
  for (let i = 0; i < t; i++) {
    if (!maskArr[i]) continue;
    real++;
    let best = 0;
    for (let e = 0; e < 3; e++) {
      p[e] += g[i * 3 + e];
      if (g[i * 3 + e] > g[i * 3 + best]) best = e;
    }
    f[best]++;
  }
  const expected = 0.25 * 3 * f.reduce((s, fi, e) => s + (fi / real) * (p[e] / real), 0);
  assert.ok(Math.abs(ctx.auxLosses[0].dataSync()[0] - expected) < 1e-6);
  const evalCtx: ForwardContext = { training: false, auxLosses: [] };
  layer.forward(x, evalCtx).dispose();
  assert.equal(evalCtx.auxLosses.length, 0);
  tf.dispose([x, tokenMask, ...ctx.auxLosses]);
  layer.dispose();
});

test('routing observer sees the softmax rows of the real tokens; uniform mode routes 1/N', () => {
  const rng = new Rng(23);
  const layer = new MorLinear(randLinear(rng, 5, 6), 'model.layers.0.mlp.up_proj');
  layer.addAdapter('default', spec({ numExperts: 4 }));
  layer.setActiveAdapter('default');
  const x = randTensor(rng, [4, 6]);
  const tokenMask = tf.tensor1d([1, 0, 1, 1], 'float32');
  const stats = new RoutingStats();
  stats.group = 'taskA';
  layer.forward(x, { training: false, auxLosses: [], tokenMask, routing: stats }).dispose();
  const g = hostSoftmax(x.dataSync() as Float32Array, layer.state('default').tensors.get('mor_router.weight')!.dataSync() as Float32Array, 4, 6, 4);
  assert.deepEqual(stats.modulePaths(), ['model.layers.0.mlp.up_proj']);
  assert.equal(stats.tokens('model.layers.0.mlp.up_proj'), 3);
  const mean = stats.mean('model.layers.0.mlp.up_proj', 'taskA');
  for (let e = 0; e < 4; e++) {
    const m = (g[0 * 4 + e] + g[2 * 4 + e] + g[3 * 4 + e]) / 3;
    assert.ok(Math.abs(mean[e] - m) < 1e-6);
  }
  layer.dispose();

  const uni = new MorLinear(randLinear(rng, 5, 6), 'u');
  uni.addAdapter('default', spec({ numExperts: 4, routerMode: 'uniform' }));
  uni.setActiveAdapter('default');
  assert.ok(!uni.state('default').tensors.has('mor_router.weight'), 'uniform mode has no router');
  const s2 = new RoutingStats();
  const y = uni.forward(x, { training: false, auxLosses: [], routing: s2 });
  assert.deepEqual(Array.from(s2.mean('u')), [0.25, 0.25, 0.25, 0.25]);
  const expected = tf.tidy(() =>
    tf.add(uni.baseLayer.forward(x), morDeltaNaive(x as tf.Tensor2D, uni.state('default').params, tf.fill([4, 4], 0.25) as tf.Tensor2D, 2)),
  );
  assert.ok(maxAbsDiff(y, expected) <= 1e-5);
  tf.dispose([x, tokenMask, y, expected]);
  uni.dispose();
});

test('meanRoutingVectors: mean over the real tokens of several batches, per layer', () => {
  const model = new ToyModel(8, 12);
  const peft = getPeftModel(model, { kind: 'mor', r: 2, numExperts: 3, targetModules: ['q_proj'], routerInitStd: 1 });
  const rng = new Rng(4);
  const table = randTensor(rng, [20, 8]);
  const batches = [
    { inputIds: Int32Array.from([1, 2, 3, 4]), attentionMask: Int32Array.from([1, 1, 1, 0]), batchSize: 2, seqLen: 2 },
    { inputIds: Int32Array.from([5, 6, 7]), attentionMask: Int32Array.from([0, 1, 1]), batchSize: 1, seqLen: 3 },
  ];
  const embed = (ids: Int32Array): tf.Tensor2D => tf.gather(table, tf.tensor1d(ids, 'int32')) as tf.Tensor2D;
  const means = meanRoutingVectors(peft, batches, (b, ctx) => tf.tidy(() => void model.forward(embed(b.inputIds), ctx)));
  assert.deepEqual([...means.keys()], ['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']);
  // Layer 0 sees the embeddings directly: its mean is checkable on the host.
  const w = peft.adapterLayers()[0][1].state('default').tensors.get('mor_router.weight')!.dataSync() as Float32Array;
  const real = [1, 2, 3, 6, 7];
  const x = tf.tidy(() => embed(Int32Array.from(real)).dataSync() as Float32Array);
  const g = hostSoftmax(x, w, real.length, 8, 3);
  const m0 = means.get('model.layers.0.self_attn.q_proj')!;
  for (let e = 0; e < 3; e++) {
    let s = 0;
    for (let i = 0; i < real.length; i++) s += g[i * 3 + e];
    assert.ok(Math.abs(m0[e] - s / real.length) < 1e-6);
  }
  table.dispose();
  peft.dispose();
});

test('dropout: only while training, deterministic for a seed, different across seeds', () => {
  const rng = new Rng(31);
  const layer = new MorLinear(randLinear(rng, 5, 6), 'd');
  layer.addAdapter('default', spec({ dropout: 0.5 }));
  layer.setActiveAdapter('default');
  const x = randTensor(rng, [4, 6]);
  const run = (ctx: ForwardContext): tf.Tensor => layer.forward(x, ctx);
  const evalOut = run({ training: false, auxLosses: [], seed: 1 });
  const plain = layer.forward(x);
  const a = run({ training: true, auxLosses: [], seed: 1 });
  const b = run({ training: true, auxLosses: [], seed: 1 });
  const c = run({ training: true, auxLosses: [], seed: 2 });
  assert.equal(maxAbsDiff(evalOut, plain), 0);
  assert.equal(maxAbsDiff(a, b), 0);
  assert.ok(maxAbsDiff(a, c) > 1e-4);
  assert.ok(maxAbsDiff(a, plain) > 1e-4);
  tf.dispose([x, evalOut, plain, a, b, c]);
  layer.dispose();
});
