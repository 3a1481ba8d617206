/**
 * Adapters on the real LlamaForCausalLM: a LoRA adapter in Python PEFT's layout (written by
 * scripts/fixtures/make_peft_lora_fixture.py with PyTorch reference logits) loads and matches;
 * injection into the model's HF module tree; exact parameter counts from the MoR.md formulas;
 * training gradients and the load-balance aux loss flow through the model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { loadAdapter } from '../../src/adapters/load.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { RoutingStats } from '../../src/routing/stats.ts';
import type { AdapterConfigInput } from '../../src/adapters/config.ts';

await initBackend();

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

test('a LoRA adapter written in PEFT layout loads and gives the PyTorch reference logits (<= 1e-4)', async () => {
  const dir = path.join(FIX, 'peft', 'llama_gqa_lora');
  const exp = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8'));
  const model = await loadModel(path.join(FIX, 'models', 'llama_gqa'));
  const peft = loadAdapter(model, dir);
  assert.equal(peft.adapterLayers().length, 6);
  const ids = tf.tensor2d(exp.input_ids, undefined, 'int32') as tf.Tensor2D;
  const mask = tf.tensor2d(exp.attention_mask, undefined, 'int32') as tf.Tensor2D;
  const logits = model.forward(ids, { attentionMask: mask });
  assert.deepEqual(logits.shape, exp.shape);
  const got = logits.dataSync();
  const [b, t, v] = exp.shape;
  let diff = 0;
  for (let i = 0; i < b; i++) for (let j = 0; j < t; j++) {
    if (exp.attention_mask[i][j] === 0) continue;
    for (let k = 0; k < v; k++) diff = Math.max(diff, Math.abs(got[(i * t + j) * v + k] - exp.logits[(i * t + j) * v + k]));
  }
  assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
  // Without the adapter the logits differ by the LoRA effect (the fixture is not a no-op).
  const base = peft.withAdapterDisabled(() => model.forward(ids, { attentionMask: mask }));
  let effect = 0;
  const bs = base.dataSync();
  for (let i = 0; i < got.length; i++) effect = Math.max(effect, Math.abs(got[i] - bs[i]));
  assert.ok(effect > 0.1);
  tf.dispose([ids, mask, logits, base]);
  peft.dispose();
});

const cfg = makeConfig({ vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 });

test('counts on LlamaForCausalLM equal the MoR.md formulas (FFN projections, as the paper)', () => {
  const c = 16;
  const f = 24;
  const L = 2;
  const model = createRandomModel(cfg, 1);
  const all = model.namedParameters().reduce((s, [, p]) => s + p.size, 0);
  // gate/up: [f, c], down: [c, f]
  const perLayer = (r: number, n: number, din: number, dout: number) => ({
    lora: r * (din + dout),
    dora: r * (din + dout) + dout,
    mor: r * (din + dout) + n * (r + dout) + n * din,
    moelora: n * r * (din + dout) + n * din,
  });
  const sum = (kind: 'lora' | 'dora' | 'mor' | 'moelora', r: number, n: number) =>
    L * (2 * perLayer(r, n, c, f)[kind] + perLayer(r, n, f, c)[kind]);
  for (const kind of ['lora', 'dora', 'mor', 'moelora'] as const) {
    const m = createRandomModel(cfg, 1);
    const routed = kind === 'mor' || kind === 'moelora' ? { numExperts: 3 } : {};
    const peft = getPeftModel(m, { kind, r: 4, ...routed, targetModules: ['gate_proj', 'up_proj', 'down_proj'] } as AdapterConfigInput);
    const counts = peft.countParameters();
    assert.equal(counts.trainable, sum(kind, 4, 3), kind);
    assert.equal(counts.all, all + sum(kind, 4, 3), kind);
    peft.dispose();
  }
  const m = createRandomModel(cfg, 1);
  const full = getPeftModel(m, { kind: 'full', targetModules: 'all-linear' });
  const linear = L * (3 * c * f + c * c * 2 + 2 * c * (c / 2)); // gate/up/down + q/o + k/v (GQA: 2 kv heads of 4)
  assert.equal(full.countParameters().trainable, linear);
  assert.equal(full.countParameters().all, all);
  full.dispose();
  model.dispose();
});

test('MoR on LlamaForCausalLM: gradients reach every adapter tensor, aux loss and routing are reported', () => {
  // Counted before the model exists: on the pure-wasm path its frozen projections keep a Wᵀ
  // from the first call on, which dispose() frees.
  const before = tf.memory().numTensors;
  const model = createRandomModel(cfg, 2);
  const peft = getPeftModel(model, { kind: 'mor', r: 4, numExperts: 3, routerMode: 'balanced', init: false, seed: 3 });
  const ids = tf.tensor2d([[1, 5, 7, 9], [0, 0, 3, 4]], undefined, 'int32') as tf.Tensor2D;
  const mask = tf.tensor2d([[1, 1, 1, 1], [0, 0, 1, 1]], undefined, 'int32') as tf.Tensor2D;
  const stats = new RoutingStats();
  const vars = peft.trainableParameters().map(([, v]) => v);
  let aux = 0;
  const { value, grads } = tf.variableGrads(() => {
    const ctx: ForwardContext = { training: true, auxLosses: [], seed: 1, routing: stats };
    const loss = model.loss(ids, ids, { attentionMask: mask, ctx });
    aux = ctx.auxLosses.length;
    const total = tf.addN([loss, ...ctx.auxLosses]) as tf.Scalar;
    tf.dispose(ctx.auxLosses);
    return total;
  }, vars);
  assert.equal(aux, 6, 'one aux loss per adapted layer');
  assert.equal(stats.tokens('model.layers.0.mlp.up_proj'), 6, 'only the 6 real tokens are observed');
  for (const v of vars) {
    const g = grads[v.name];
    assert.ok(g && tf.tidy(() => g.abs().max().dataSync()[0]) > 0, `non-zero gradient for ${v.name}`);
  }
  tf.dispose([value, ...Object.values(grads), ids, mask]);
  peft.dispose();
  assert.equal(tf.memory().numTensors, before);
});
