/**
 * Parameter budgets: the docs/mor.md formulas (budget.ts) against counts written out by hand for a
 * small GQA model, and against `countParameters()` of the real adapters injected into that
 * model (every kind, router modes, biases); rank matching picks the closest integer rank.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { countParameters } from '../../src/adapters/params.ts';
import { parseAdapterConfig, type AdapterConfigInput } from '../../src/adapters/config.ts';
import { formulaTrainableParameters, llamaParameterCount, matchRank, targetedLayers } from '../../src/experiment/budget.ts';

await initBackend({ announce: false });

// hidden 64, intermediate 96, 4 heads of 16, 2 kv heads (k/v out = 32), 2 layers, vocab 50.
const cfg = makeConfig({ vocabSize: 50, hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 });
const qwen = makeConfig({ modelType: 'qwen2', vocabSize: 50, hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: true });
const FFN = ['gate_proj', 'up_proj', 'down_proj'];

test('formulas equal hand-written counts', () => {
  // MoR r=4 N=3 on the FFN: gate/up [96,64], down [64,96], two layers.
  const gate = 4 * (64 + 96) + 3 * (4 + 96) + 3 * 64; // 640 + 300 + 192
  const down = 4 * (96 + 64) + 3 * (4 + 64) + 3 * 96; // 640 + 204 + 288
  assert.equal(formulaTrainableParameters(cfg, parseAdapterConfig({ kind: 'mor', r: 4, numExperts: 3 })), 2 * (2 * gate + down));
  // Uniform routing: no router.
  const gateU = 4 * 160 + 3 * 100;
  const downU = 4 * 160 + 3 * 68;
  assert.equal(formulaTrainableParameters(cfg, parseAdapterConfig({ kind: 'mor', r: 4, numExperts: 3, routerMode: 'uniform' })), 2 * (2 * gateU + downU));
  // LoRA r=2 on q (64->64) and v (64->32), the default targets.
  assert.equal(formulaTrainableParameters(cfg, parseAdapterConfig({ kind: 'lora', r: 2 })), 2 * (2 * 128 + 2 * 96));
  // DoRA adds the magnitude vector d_out.
  assert.equal(formulaTrainableParameters(cfg, parseAdapterConfig({ kind: 'dora', r: 2 })), 2 * (2 * 128 + 64 + 2 * 96 + 32));
  // MoELoRA N=2 r_e=3 on up_proj only: N r_e (in+out) + N in.
  assert.equal(formulaTrainableParameters(cfg, parseAdapterConfig({ kind: 'moelora', r: 3, numExperts: 2, targetModules: ['up_proj'] })), 2 * (2 * 3 * 160 + 2 * 64));
  // Full on all linears: attention 64*64*2 + 64*32*2, MLP 3*64*96, per layer.
  assert.equal(formulaTrainableParameters(cfg, parseAdapterConfig({ kind: 'full' })), 2 * (2 * 4096 + 2 * 2048 + 3 * 6144));
  // layersToTransform keeps one layer.
  assert.equal(formulaTrainableParameters(cfg, parseAdapterConfig({ kind: 'lora', r: 2, layersToTransform: [1] })), 2 * 128 + 2 * 96);
  // Base model: 2 embeddings (untied) + norms + linears.
  assert.equal(llamaParameterCount(cfg), 2 * 50 * 64 + 64 + 2 * (2 * 64 + 2 * 4096 + 2 * 2048 + 3 * 6144));
  assert.deepEqual(targetedLayers(cfg, parseAdapterConfig({ kind: 'lora', targetModules: 'model\\.layers\\.0\\.mlp\\.(up|down)_proj' })).map((l) => l.path), [
    'model.layers.0.mlp.up_proj',
    'model.layers.0.mlp.down_proj',
  ]);
});

const CASES: [string, AdapterConfigInput, typeof cfg][] = [
  ['lora ffn', { kind: 'lora', r: 5, targetModules: FFN }, cfg],
  ['lora bias', { kind: 'lora', r: 3, loraBias: true }, cfg],
  ['dora', { kind: 'dora', r: 4, targetModules: FFN }, cfg],
  ['moelora', { kind: 'moelora', r: 2, numExperts: 4, targetModules: FFN }, cfg],
  ['moelora router bias', { kind: 'moelora', r: 2, numExperts: 3, routerBias: true }, cfg],
  ['mor softmax', { kind: 'mor', r: 4, numExperts: 8 }, cfg],
  ['mor uniform', { kind: 'mor', r: 4, numExperts: 2, routerMode: 'uniform' }, cfg],
  ['mor balanced router bias', { kind: 'mor', r: 6, numExperts: 3, routerMode: 'balanced', routerBias: true }, cfg],
  ['full', { kind: 'full' }, cfg],
  ['full with qkv bias', { kind: 'full', trainBias: true }, qwen],
  ['mor on qwen attention', { kind: 'mor', r: 2, numExperts: 2, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] }, qwen],
];

for (const [name, input, modelCfg] of CASES) {
  test(`countParameters() equals the formula: ${name}`, () => {
    const before = tf.memory().numTensors;
    const model = createRandomModel(modelCfg, 1);
    assert.equal(countParameters(model).all, llamaParameterCount(modelCfg), 'base model count');
    const peft = getPeftModel(model, input);
    try {
      assert.equal(peft.countParameters().trainable, formulaTrainableParameters(modelCfg, parseAdapterConfig(input)));
    } finally {
      peft.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
  });
}

test('matchRank picks the closest integer rank', () => {
  const mor = parseAdapterConfig({ kind: 'mor', r: 8, numExperts: 8 });
  const target = formulaTrainableParameters(cfg, mor);
  const lora = parseAdapterConfig({ kind: 'lora', targetModules: FFN });
  const { r, count } = matchRank(cfg, lora, target);
  // LoRA on the FFN: 2 layers x 3 modules x r x 160 = 960 r; closest to target by brute force here.
  let best = 1;
  for (let k = 1; k < 200; k++) if (Math.abs(960 * k - target) < Math.abs(960 * best - target)) best = k;
  assert.equal(r, best);
  assert.equal(count, 960 * best);
  const moe = matchRank(cfg, parseAdapterConfig({ kind: 'moelora', numExperts: 8, targetModules: FFN }), target);
  // 2 x (2 x (8 r 160 + 8 x 64) + (8 r 160 + 8 x 96)) = 7680 r + 3584
  let bestE = 1;
  for (let k = 1; k < 50; k++) if (Math.abs(7680 * k + 3584 - target) < Math.abs(7680 * bestE + 3584 - target)) bestE = k;
  assert.equal(moe.r, bestE);
  assert.throws(() => matchRank(cfg, parseAdapterConfig({ kind: 'full' }), target), /no rank/);
});
