/** MoELoRA: rank-expansion forward vs per-expert loop, top-k renormalisation, load balance. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { Rng } from '../../src/util/rng.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { MoeLoraLinear, moeLoraDelta, moeLoraDeltaNaive, type MoeLoraLayerSpec } from '../../src/adapters/moelora.ts';
import { RoutingStats } from '../../src/routing/stats.ts';
import { layerVsReferenceGrads, maxAbsDiff, randLinear, randTensor } from './helpers.ts';

await initBackend();

const spec = (over: Partial<MoeLoraLayerSpec> = {}): MoeLoraLayerSpec => ({
  r: 2, alpha: 4, dropout: 0, useRslora: false, init: false, numExperts: 4, loadBalance: false, loadBalanceCoef: 1,
  routerInitStd: 1, routerBias: false, seed: 1, ...over,
});

test('MoELoRA stacked forward equals the per-expert loop on random shapes', () => {
  const rng = new Rng(1);
  for (let trial = 0; trial < 6; trial++) {
    const [t, dIn, dOut, r, n] = [1 + rng.int(7), 1 + rng.int(9), 1 + rng.int(9), 1 + rng.int(4), 1 + rng.int(5)];
    tf.tidy(() => {
      const x = randTensor(rng, [t, dIn], 0.5) as tf.Tensor2D;
      const a = randTensor(rng, [n, r, dIn], 0.5);
      const b = randTensor(rng, [n, dOut, r], 0.5);
      const g = tf.softmax(randTensor(rng, [t, n])) as tf.Tensor2D;
      assert.ok(maxAbsDiff(moeLoraDelta(x, a, b, g, 1.5), moeLoraDeltaNaive(x, a, b, g, 1.5)) <= 1e-5);
    });
  }
});

test('top-k keeps k experts per token, renormalised; load-balance loss counts 1/k per assignment', () => {
  const rng = new Rng(2);
  const l = new MoeLoraLinear(randLinear(rng, 5, 6), 'm');
  l.addAdapter('default', spec({ topK: 2, loadBalance: true, loadBalanceCoef: 0.5 }));
  l.setActiveAdapter('default');
  const x = randTensor(rng, [6, 6]);
  const stats = new RoutingStats();
  const tokenMask = tf.tensor1d([1, 1, 1, 0, 1, 1]);
  const ctx: ForwardContext = { training: true, auxLosses: [], routing: stats, tokenMask };
  const captured: Float32Array[] = [];
  ctx.routing = { record: (p, w) => { captured.push(w.dataSync() as Float32Array); stats.record(p, w); } };
  const y = l.forward(x, ctx);
  const gates = captured[0];
  assert.equal(gates.length, 5 * 4, 'only the 5 real tokens are reported');
  // Host router probabilities.
  const xs = x.dataSync();
  const w = l.state('default').tensors.get('moelora_router.weight')!.dataSync();
  const real = [0, 1, 2, 4, 5];
  const f = [0, 0, 0, 0];
  const p = [0, 0, 0, 0];
  real.forEach((t, row) => {
    const logits = [0, 1, 2, 3].map((e) => [0, 1, 2, 3, 4, 5].reduce((s, i) => s + xs[t * 6 + i] * w[e * 6 + i], 0));
    const mx = Math.max(...logits);
    const ex = logits.map((v) => Math.exp(v - mx));
    const z = ex.reduce((s, v) => s + v, 0);
    const probs = ex.map((v) => v / z);
    const order = [0, 1, 2, 3].sort((i, j) => probs[j] - probs[i]);
    const keep = order.slice(0, 2);
    const ks = probs[keep[0]] + probs[keep[1]];
    for (let e = 0; e < 4; e++) {
      const expected = keep.includes(e) ? probs[e] / ks : 0;
      assert.ok(Math.abs(gates[row * 4 + e] - expected) < 1e-5);
      p[e] += probs[e] / real.length;
      if (keep.includes(e)) f[e] += 0.5 / real.length;
    }
  });
  const lb = 0.5 * 4 * f.reduce((s, fi, e) => s + fi * p[e], 0);
  assert.equal(ctx.auxLosses.length, 1);
  assert.ok(Math.abs(ctx.auxLosses[0].dataSync()[0] - lb) < 1e-5);
  // The forward uses exactly these gates.
  const expected = tf.tidy(() => {
    const st = l.state('default').tensors;
    const g = tf.tensor2d(Float32Array.from({ length: 24 }, (_, i) => {
      const t = Math.floor(i / 4);
      const row = real.indexOf(t);
      return row < 0 ? 0 : gates[row * 4 + (i % 4)];
    }), [6, 4]);
    const d = moeLoraDeltaNaive(x as tf.Tensor2D, st.get('moelora_A.weight')!, st.get('moelora_B.weight')!, g, 2);
    return tf.add(l.baseLayer.forward(x), d);
  });
  const ys = y.dataSync();
  const es = expected.dataSync();
  for (const t of real) for (let o = 0; o < 5; o++) assert.ok(Math.abs(ys[t * 5 + o] - es[t * 5 + o]) < 1e-5);
  tf.dispose([x, y, tokenMask, expected, ...ctx.auxLosses]);
  l.dispose();
});

test('MoELoRA layer gradients (one [A_1..A_N; W_g] product without dropout) equal autodiff of base + per-expert loop', () => {
  const rng = new Rng(4);
  const base = randLinear(rng, 7, 6, true);
  const layer = new MoeLoraLinear(base, 'm');
  layer.addAdapter('default', spec({ routerBias: true }));
  layer.setActiveAdapter('default');
  const t = layer.state('default').tensors;
  const diffs = layerVsReferenceGrads(rng, layer, (x) => {
    const logits = tf.add(tf.matMul(x, t.get('moelora_router.weight')!, false, true), t.get('moelora_router.bias')!);
    const g = tf.softmax(logits) as tf.Tensor2D;
    return tf.add(base.forward(x), moeLoraDeltaNaive(x, t.get('moelora_A.weight')!, t.get('moelora_B.weight')!, g, layer.state('default').scaling));
  });
  for (const { name, diff } of diffs) assert.ok(diff <= 1e-5, `${name}: ${diff}`);
});
