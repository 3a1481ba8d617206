/** Injection: target selection, config validation, several adapters, modulesToSave, freezing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { Rng } from '../../src/util/rng.ts';
import { UserError } from '../../src/errors.ts';
import { getPeftModel, PeftModel } from '../../src/adapters/inject.ts';
import { parseAdapterConfig, type AdapterConfigInput } from '../../src/adapters/config.ts';
import { LoraLinear } from '../../src/adapters/lora.ts';
import { ToyModel, maxAbsDiff, randTensor } from './helpers.ts';

await initBackend();

function adaptedPaths(config: AdapterConfigInput): string[] {
  const peft = getPeftModel(new ToyModel(8, 12, 3), config);
  const paths = peft.adapterLayers().map(([p]) => p);
  peft.dispose();
  return paths;
}

test('targetModules: suffix list, full-match regex, all-linear without lm_head', () => {
  assert.deepEqual(adaptedPaths({ kind: 'lora', targetModules: ['v_proj'] }), [0, 1, 2].map((i) => `model.layers.${i}.self_attn.v_proj`));
  // Default for LoRA: q_proj and v_proj, as PEFT for LLaMA.
  assert.equal(adaptedPaths({ kind: 'lora' }).length, 6);
  // Default for MoR: the FFN projections (the paper's setting).
  assert.deepEqual(adaptedPaths({ kind: 'mor', layersToTransform: 0 }), ['gate_proj', 'up_proj', 'down_proj'].map((n) => `model.layers.0.mlp.${n}`));
  // A regex must match the whole path (re.fullmatch): "q_proj" alone matches nothing.
  assert.deepEqual(adaptedPaths({ kind: 'lora', targetModules: String.raw`.*\.1\.self_attn\.(q|k)_proj` }), [
    'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.k_proj',
  ]);
  assert.throws(() => adaptedPaths({ kind: 'lora', targetModules: 'q_proj' }), (e: Error) => e instanceof UserError && /matched no linear layer/.test(e.message));
  const all = adaptedPaths({ kind: 'lora', targetModules: 'all-linear' });
  assert.equal(all.length, 3 * 7);
  assert.ok(!all.includes('lm_head'));
  assert.ok(adaptedPaths({ kind: 'lora', targetModules: ['lm_head'] }).includes('lm_head'), 'lm_head can be named explicitly');
});

test('layersToTransform, layersPattern, excludeModules', () => {
  assert.deepEqual(adaptedPaths({ kind: 'lora', targetModules: ['q_proj'], layersToTransform: [0, 2] }), [
    'model.layers.0.self_attn.q_proj', 'model.layers.2.self_attn.q_proj',
  ]);
  assert.deepEqual(adaptedPaths({ kind: 'lora', targetModules: ['q_proj'], layersToTransform: 1, layersPattern: 'layers' }), [
    'model.layers.1.self_attn.q_proj',
  ]);
  assert.throws(() => adaptedPaths({ kind: 'lora', targetModules: ['q_proj'], layersToTransform: [7] }), /layersToTransform \[7\] matched no linear layer/);
  assert.throws(() => adaptedPaths({ kind: 'lora', targetModules: '.*q_proj', layersToTransform: [0] }), UserError);
  assert.equal(adaptedPaths({ kind: 'lora', targetModules: 'all-linear', excludeModules: ['mlp.up_proj', 'o_proj'] }).length, 3 * 5);
});

test('rankPattern / alphaPattern override r and alpha per module (PEFT get_pattern_key)', () => {
  const peft = getPeftModel(new ToyModel(8, 12, 2), {
    kind: 'lora', r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'],
    rankPattern: { 'layers\\.1\\.self_attn\\.q_proj': 5 }, alphaPattern: { v_proj: 10 },
  });
  const byPath = new Map(peft.adapterLayers());
  const l = (p: string) => (byPath.get(p) as LoraLinear).state('default');
  assert.deepEqual(l('model.layers.1.self_attn.q_proj').tensors.get('lora_A.weight')!.shape, [5, 8]);
  assert.equal(l('model.layers.1.self_attn.q_proj').scaling, 4 / 5);
  assert.deepEqual(l('model.layers.0.self_attn.q_proj').tensors.get('lora_A.weight')!.shape, [2, 8]);
  assert.equal(l('model.layers.0.self_attn.v_proj').scaling, 10 / 2);
  assert.equal(peft.countParameters().trainable, 2 * 16 * 3 + 5 * 16);
  peft.dispose();
});

test('config validation: unknown keys, bad values, wrong kind are UserErrors naming the field', () => {
  assert.throws(() => parseAdapterConfig({ kind: 'lora', rank: 8 }), (e: Error) => e instanceof UserError && /unknown key "rank"/.test(e.message));
  assert.throws(() => parseAdapterConfig({ kind: 'mor', r: 0 }), /r:/);
  assert.throws(() => parseAdapterConfig({ kind: 'mor', routerMode: 'topk' }), /routerMode/);
  assert.throws(() => parseAdapterConfig({ kind: 'vera' }), /kind must be one of lora, dora, moelora, mor, full/);
  assert.throws(() => parseAdapterConfig({ kind: 'moelora', numExperts: 4, topK: 5 }), /topK \(5\) must be <= numExperts \(4\)/);
  assert.throws(() => parseAdapterConfig({ kind: 'lora', targetModules: '(' }), /invalid regex/);
  assert.throws(() => getPeftModel(new ToyModel(), { kind: 'lora', targetModules: ['mlp'] }), /"model.layers.0.mlp" is a ToyMlp, not a linear layer/);
  const c = parseAdapterConfig({ kind: 'mor' });
  assert.equal(c.kind === 'mor' && c.numExperts, 8);
  assert.equal(c.kind === 'mor' && c.routerMode, 'softmax');
});

test('base frozen, active adapter trainable; several adapters: add, set, disable (scoped), delete', () => {
  const before = tf.memory().numTensors;
  const model = new ToyModel(8, 12, 2);
  const x = randTensor(new Rng(1), [3, 8]) as tf.Tensor2D;
  const base = model.forward(x);
  const peft = getPeftModel(model, { kind: 'lora', r: 2, init: false, seed: 1 }, 'a');
  const outA = model.forward(x);
  assert.ok(peft.trainableParameters().every(([k]) => k.includes('.lora_') && k.includes('.a.')));
  peft.addAdapter('b', { kind: 'lora', r: 3, init: false, seed: 2, targetModules: ['q_proj', 'up_proj'] });
  assert.equal(peft.activeAdapter, 'a', 'addAdapter does not activate (as PEFT)');
  assert.equal(peft.countParameters().trainable, 4 * 2 * 16);
  const stillA = model.forward(x);
  assert.equal(maxAbsDiff(stillA, outA), 0);
  peft.setAdapter('b');
  const outB = model.forward(x);
  assert.ok(maxAbsDiff(outB, outA) > 1e-3);
  assert.equal(peft.countParameters().trainable, 2 * 3 * 16 + 2 * 3 * (8 + 12));
  assert.ok(peft.trainableParameters().every(([k]) => k.includes('.b.')));
  const off = peft.withAdapterDisabled(() => model.forward(x));
  assert.equal(maxAbsDiff(off, base), 0);
  assert.throws(() => peft.withAdapterDisabled(() => { throw new Error('boom'); }), /boom/);
  const afterThrow = model.forward(x);
  assert.equal(maxAbsDiff(afterThrow, outB), 0, 'state restored after a throw');
  assert.throws(() => peft.addAdapter('c', { kind: 'mor', targetModules: ['q_proj'] }), /already holds lora adapter\(s\) \(a, b\)/);
  assert.throws(() => peft.addAdapter('b', { kind: 'lora' }), /already exists/);
  assert.throws(() => peft.setAdapter('zzz'), /no adapter named "zzz"/);
  peft.deleteAdapter('b');
  assert.equal(peft.activeAdapter, 'a');
  assert.ok(!peft.adapterLayers().some(([p]) => p.endsWith('up_proj')), 'layers left without adapters are unwrapped');
  const backToA = model.forward(x);
  assert.equal(maxAbsDiff(backToA, outA), 0);
  peft.deleteAdapter('a');
  assert.equal(peft.adapterLayers().length, 0);
  const plain = model.forward(x);
  assert.equal(maxAbsDiff(plain, base), 0);
  tf.dispose([x, base, outA, stillA, outB, off, afterThrow, backToA, plain]);
  peft.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('withAdapterDisabled works with async functions and restores after the promise settles', async () => {
  const model = new ToyModel(8, 12, 1);
  const peft = getPeftModel(model, { kind: 'lora', init: false });
  const x = randTensor(new Rng(2), [2, 8]) as tf.Tensor2D;
  const on = model.forward(x);
  const off = await peft.withAdapterDisabled(async () => {
    await new Promise((r) => setTimeout(r, 1));
    return model.forward(x);
  });
  assert.ok(maxAbsDiff(on, off) > 1e-3);
  const again = model.forward(x);
  assert.equal(maxAbsDiff(again, on), 0);
  tf.dispose([x, on, off, again]);
  peft.dispose();
});

test('modulesToSave: trainable per-adapter copy of lm_head; disabled uses the original', () => {
  const model = new ToyModel(8, 12, 1);
  const x = randTensor(new Rng(2), [2, 8]) as tf.Tensor2D;
  const base = model.forward(x);
  const peft = getPeftModel(model, { kind: 'lora', r: 2, modulesToSave: ['lm_head'] });
  const names = peft.trainableParameters().map(([k]) => k);
  assert.ok(names.includes('base_model.model.lm_head.weight'));
  assert.equal(peft.countParameters().trainable, 2 * 2 * 16 + 10 * 8);
  const v = peft.trainableParameters().find(([k]) => k === 'base_model.model.lm_head.weight')![1];
  v.assign(tf.add(v, 1));
  const changed = model.forward(x);
  assert.ok(maxAbsDiff(changed, base) > 1e-3);
  const off = peft.withAdapterDisabled(() => model.forward(x));
  assert.equal(maxAbsDiff(off, base), 0);
  assert.ok(peft.adapterTensors('default').has('base_model.model.lm_head.weight'));
  const plain = peft.mergeAndUnload();
  const kept = plain.forward(x);
  assert.equal(maxAbsDiff(kept, changed), 0, 'mergeAndUnload keeps the trained module');
  tf.dispose([x, base, changed, off, kept]);
  plain.namedParameters().forEach(([, p]) => p.dispose());
});

test('PeftModel parameter names are PEFT state-dict names', () => {
  const peft = new PeftModel(new ToyModel(8, 12, 1));
  peft.addAdapter('default', { kind: 'dora', r: 2, targetModules: ['q_proj'] });
  const names = peft.namedParameters().map(([k]) => k);
  assert.ok(names.includes('base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight'));
  assert.ok(names.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight'));
  assert.ok(names.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector.default'));
  assert.deepEqual([...peft.adapterTensors('default').keys()].sort(), [
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
    'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector',
  ]);
  peft.dispose();
});

test('PEFT bias modes: "lora_only" trains the biases of adapted layers, "all" every bias; saved and reloaded', async () => {
  const { savePretrained } = await import('../../src/adapters/save.ts');
  const { loadAdapter } = await import('../../src/adapters/load.ts');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const x = randTensor(new Rng(2), [2, 8]) as tf.Tensor2D;
  for (const bias of ['lora_only', 'all'] as const) {
    const model = new ToyModel(8, 12, 1, 10, 1, true); // attention projections with biases
    const peft = getPeftModel(model, { kind: 'lora', r: 2, targetModules: ['q_proj'], bias });
    const names = peft.trainableParameters().map(([k]) => k).filter((k) => k.endsWith('bias'));
    const expected = bias === 'lora_only'
      ? ['base_model.model.model.layers.0.self_attn.q_proj.base_layer.bias']
      : ['q_proj.base_layer', 'k_proj', 'v_proj', 'o_proj'].map((n) => `base_model.model.model.layers.0.self_attn.${n}.bias`);
    assert.deepEqual(names.sort(), expected.sort());
    for (const [k, v] of peft.trainableParameters()) if (k.endsWith('bias')) v.assign(tf.add(v, 0.5));
    const y = model.forward(x);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-bias-'));
    savePretrained(peft, dir);
    const model2 = new ToyModel(8, 12, 1, 10, 1, true);
    const p2 = loadAdapter(model2, dir);
    const y2 = model2.forward(x);
    assert.equal(maxAbsDiff(y, y2), 0, bias);
    const off = p2.withAdapterDisabled(() => model2.forward(x));
    const base = new ToyModel(8, 12, 1, 10, 1, true);
    const y0 = base.forward(x);
    assert.equal(maxAbsDiff(off, y0), 0, 'disabled: original biases');
    tf.dispose([y, y2, off, y0]);
    base.dispose();
    peft.dispose();
    p2.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  x.dispose();
});
