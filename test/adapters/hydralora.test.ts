/** HydraLoRA: rank-expansion forward vs per-head loop, layer gradients vs autodiff of the loop, PEFT file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { Rng } from '../../src/util/rng.ts';
import { HydraLoraLinear, hydraLoraDelta, hydraLoraDeltaNaive, type HydraLoraLayerSpec } from '../../src/adapters/hydralora.ts';
import { fromPeftConfig, toPeftConfig } from '../../src/adapters/peftConfig.ts';
import { parseAdapterConfig } from '../../src/adapters/config.ts';
import { layerVsReferenceGrads, maxAbsDiff, randLinear, randTensor } from './helpers.ts';

await initBackend();

const spec = (over: Partial<HydraLoraLayerSpec> = {}): HydraLoraLayerSpec => ({
  r: 2, alpha: 4, dropout: 0, useRslora: false, init: false, numExperts: 3, loadBalance: false, loadBalanceCoef: 1,
  routerInitStd: 1, routerBias: false, seed: 1, ...over,
});

test('HydraLoRA stacked-heads forward equals the per-head loop on random shapes (per-token and fixed routing)', () => {
  const before = tf.memory().numTensors;
  const rng = new Rng(1);
  for (let trial = 0; trial < 6; trial++) {
    const [t, dOut, r, n] = [1 + rng.int(7), 1 + rng.int(9), 1 + rng.int(4), 1 + rng.int(5)];
    tf.tidy(() => {
      const h = randTensor(rng, [t, r], 0.5) as tf.Tensor2D;
      const b = randTensor(rng, [n, dOut, r], 0.5);
      const g = tf.softmax(randTensor(rng, [t, n])) as tf.Tensor2D;
      assert.ok(maxAbsDiff(hydraLoraDelta(h, b, g, 1.5), hydraLoraDeltaNaive(h, b, g, 1.5)) <= 1e-5);
      const g1 = tf.softmax(randTensor(rng, [1, n])) as tf.Tensor2D; // broadcast over tokens
      assert.ok(maxAbsDiff(hydraLoraDelta(h, b, g1, 0.5), hydraLoraDeltaNaive(h, b, g1, 0.5)) <= 1e-5);
    });
  }
  assert.equal(tf.memory().numTensors, before);
});

for (const dropout of [0, 0.5]) {
  test(`HydraLoRA layer gradients equal autodiff of base + per-head loop (dropout ${dropout}: ${dropout ? 'separate' : 'one [A; W_g]'} product)`, () => {
    const before = tf.memory().numTensors;
    const rng = new Rng(4);
    const base = randLinear(rng, 7, 6, true);
    const layer = new HydraLoraLinear(base, 'm');
    layer.addAdapter('default', spec({ routerBias: true, dropout }));
    layer.setActiveAdapter('default');
    const t = layer.state('default').tensors;
    // Same dropout mask: the forward context has no seed, so both draw from a copy of the layer's stream.
    const keep = dropout ? maskFor(layer) : undefined;
    const diffs = layerVsReferenceGrads(rng, layer, (x) => {
      const logits = tf.add(tf.matMul(x, t.get('hydra_router.weight')!, false, true), t.get('hydra_router.bias')!);
      const g = tf.softmax(logits) as tf.Tensor2D;
      const xd = keep ? tf.mul(x, keep) : x;
      const h = tf.matMul(xd, t.get('hydra_A.weight')!, false, true) as tf.Tensor2D;
      return tf.add(base.forward(x), hydraLoraDeltaNaive(h, t.get('hydra_B.weight')!, g, layer.state('default').scaling));
    });
    keep?.dispose();
    for (const { name, diff } of diffs) assert.ok(diff <= 1e-5, `${name}: ${diff}`);
    assert.equal(tf.memory().numTensors, before);
  });
}

/** The dropout mask `[5, 6]` the layer's own stream gives next (read from a copy of its state). */
function maskFor(layer: HydraLoraLinear): tf.Tensor {
  const s = layer.state('default');
  const rng = new Rng(0);
  rng.setState(s.rng.getState());
  const m = new Float32Array(30);
  for (let i = 0; i < 30; i++) m[i] = rng.next() < 0.5 ? 2 : 0;
  return tf.tensor(m, [5, 6]);
}

test('HydraLoRA adapter_config.json: own peft_type, fields both ways', () => {
  const cfg = parseAdapterConfig({ kind: 'hydralora', r: 4, numExperts: 5, loadBalance: true, routerBias: true, seed: 3 });
  const json = toPeftConfig(cfg);
  assert.equal(json.peft_type, 'HYDRALORA');
  assert.equal(json.num_experts, 5);
  assert.equal(json.load_balance, true);
  assert.deepEqual(fromPeftConfig(JSON.parse(JSON.stringify(json))), cfg);
  assert.throws(() => fromPeftConfig({ ...json, top_k: 2 }), /field "top_k" = 2 is not supported/);
});
