/** Save/load in PEFT's layout: config fields, tensor keys, validation errors naming the tensor. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { Rng } from '../../src/util/rng.ts';
import { UserError } from '../../src/errors.ts';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { savePretrained } from '../../src/adapters/save.ts';
import { loadAdapter } from '../../src/adapters/load.ts';
import { fromPeftConfig, toPeftConfig } from '../../src/adapters/peftConfig.ts';
import { parseAdapterConfig } from '../../src/adapters/config.ts';
import { ToyModel, maxAbsDiff, randTensor } from './helpers.ts';

await initBackend();

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mor-saveload-'));
}

test('LoRA / DoRA adapter_config.json uses PEFT field names and values', () => {
  const lora = toPeftConfig(parseAdapterConfig({ kind: 'lora', r: 16, alpha: 32, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] }));
  assert.equal(lora.peft_type, 'LORA');
  assert.equal(lora.use_dora, false);
  assert.equal(lora.r, 16);
  assert.equal(lora.lora_alpha, 32);
  assert.equal(lora.lora_dropout, 0.05);
  assert.deepEqual(lora.target_modules, ['q_proj', 'v_proj']);
  assert.equal(lora.task_type, 'CAUSAL_LM');
  assert.equal(lora.init_lora_weights, true);
  assert.equal(lora.bias, 'none');
  assert.deepEqual(lora.rank_pattern, {});
  assert.equal(lora.use_rslora, false);
  assert.ok(!('seed' in lora), 'no non-PEFT keys in a LoRA config');
  assert.deepEqual(Object.keys(lora), [...Object.keys(lora)].sort(), 'sorted keys like json.dumps(sort_keys=True)');
  const dora = toPeftConfig(parseAdapterConfig({ kind: 'dora' }));
  assert.equal(dora.peft_type, 'LORA');
  assert.equal(dora.use_dora, true);
  const mor = toPeftConfig(parseAdapterConfig({ kind: 'mor', numExperts: 6, routerMode: 'balanced' }));
  assert.equal(mor.peft_type, 'MOR');
  assert.equal(mor.num_experts, 6);
  assert.equal(mor.router_mode, 'balanced');
  for (const kind of ['lora', 'dora', 'mor', 'moelora', 'full'] as const) {
    const c = parseAdapterConfig({ kind, ...(kind === 'moelora' ? { topK: 2 } : {}) });
    assert.deepEqual(fromPeftConfig(toPeftConfig(c)), c, `${kind} config round trip`);
  }
});

test('reading adapter_config.json: PEFT bookkeeping accepted, unsupported meaning rejected', () => {
  const peftWritten = {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: 'tiny', bias: 'none', eva_config: null,
    exclude_modules: null, fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, layer_replication: null,
    layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: 16, lora_bias: false, lora_dropout: 0.0,
    megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', r: 4,
    rank_pattern: {}, revision: null, target_modules: ['v_proj', 'q_proj'], task_type: 'CAUSAL_LM',
    trainable_token_indices: null, use_dora: false, use_rslora: false, peft_version: '0.17.1',
  };
  const c = fromPeftConfig(peftWritten);
  assert.equal(c.kind, 'lora');
  assert.equal(c.kind === 'lora' && c.alpha, 16);
  assert.throws(() => fromPeftConfig({ ...peftWritten, fan_in_fan_out: true }, 'x.json'), /x.json: fan_in_fan_out=true/);
  assert.throws(() => fromPeftConfig({ ...peftWritten, init_lora_weights: 'pissa' }), /init_lora_weights="pissa" is not supported/);
  assert.throws(() => fromPeftConfig({ ...peftWritten, layer_replication: [[0, 2]] }), /field "layer_replication"/);
  assert.throws(() => fromPeftConfig({ ...peftWritten, peft_type: 'IA3' }), /peft_type "IA3" is not supported/);
  assert.throws(() => fromPeftConfig({ ...peftWritten, r: -1 }), (e: Error) => e instanceof UserError && /r:/.test(e.message));
});

test('saved tensors: PEFT keys and shapes, format metadata; non-default adapters in subfolders', () => {
  const dir = tmp();
  try {
    const peft = getPeftModel(new ToyModel(8, 12, 1), { kind: 'mor', r: 3, numExperts: 4, targetModules: ['up_proj'] });
    peft.addAdapter('b', { kind: 'mor', r: 2, numExperts: 2, targetModules: ['up_proj'], routerMode: 'uniform' });
    savePretrained(peft, dir);
    const { metadata, tensors } = readSafetensors(path.join(dir, 'adapter_model.safetensors'));
    assert.equal(metadata.format, 'pt');
    const p = 'base_model.model.model.layers.0.mlp.up_proj';
    assert.deepEqual(new Map([...tensors].map(([k, t]) => [k, t.shape])), new Map([
      [`${p}.mor_A.weight`, [3, 8]], [`${p}.mor_B.weight`, [12, 3]], [`${p}.mor_omega_A`, [4, 3]],
      [`${p}.mor_omega_B`, [4, 12]], [`${p}.mor_router.weight`, [4, 8]],
    ]));
    const b = readSafetensors(path.join(dir, 'b', 'adapter_model.safetensors'));
    assert.deepEqual([...b.tensors.keys()].sort(), [`${p}.mor_A.weight`, `${p}.mor_B.weight`, `${p}.mor_omega_A`, `${p}.mor_omega_B`]);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'b', 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.router_mode, 'uniform');
    // Load both into a fresh model as two adapters.
    const model2 = new ToyModel(8, 12, 1);
    const p2 = loadAdapter(model2, dir);
    loadAdapter(p2, path.join(dir, 'b'), 'b');
    assert.deepEqual([...p2.peftConfig.keys()], ['default', 'b']);
    assert.equal(p2.activeAdapter, 'default');
    assert.equal(p2.countParameters().trainable, 0, 'loaded for inference by default');
    p2.setTrainable('default', true);
    assert.equal(p2.countParameters().trainable, 3 * 20 + 4 * 15 + 4 * 8);
    p2.setAdapter('b');
    const x = randTensor(new Rng(1), [2, 8]) as tf.Tensor2D;
    peft.setAdapter('b');
    const y1 = peft.model.forward(x);
    const y2 = model2.forward(x);
    assert.equal(maxAbsDiff(y1, y2), 0);
    tf.dispose([x, y1, y2]);
    peft.dispose();
    p2.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loading fails naming the tensor: missing, extra, wrong shape; the model is left untouched', () => {
  const dir = tmp();
  try {
    const peft = getPeftModel(new ToyModel(8, 12, 1), { kind: 'dora', r: 2, targetModules: ['q_proj', 'down_proj'] });
    savePretrained(peft, dir);
    peft.dispose();
    const file = path.join(dir, 'adapter_model.safetensors');
    const { tensors } = readSafetensors(file);
    const key = 'base_model.model.model.layers.0.mlp.down_proj.lora_magnitude_vector';
    const target = new ToyModel(8, 12, 1);
    const x = randTensor(new Rng(1), [2, 8]) as tf.Tensor2D;
    const y0 = target.forward(x);
    const expectFail = (mutate: (m: Map<string, (typeof tensors extends Map<string, infer V> ? V : never)>) => void, re: RegExp): void => {
      const m = new Map(tensors);
      mutate(m);
      writeSafetensors(file, m);
      assert.throws(() => loadAdapter(target, dir), (e: Error) => e instanceof UserError && re.test(e.message), re.source);
      assert.equal(target.child('model').getModule('layers.0.mlp').child('down_proj').constructor.name, 'Linear');
    };
    expectFail((m) => m.delete(key), new RegExp(`missing tensor "${key.replace(/\./g, '\\.')}"`));
    expectFail((m) => m.set('base_model.model.lm_head.lora_A.weight', tensors.get(key)!), /unexpected tensor "base_model\.model\.lm_head\.lora_A\.weight"/);
    expectFail(
      (m) => m.set(key, { dtype: 'F32', shape: [13], data: new Float32Array(13) }),
      /tensor "base_model\.model\.model\.layers\.0\.mlp\.down_proj\.lora_magnitude_vector" has shape \[13\], the model needs \[8\]/,
    );
    // A model with other shapes.
    writeSafetensors(file, tensors);
    const other = new ToyModel(8, 16, 1);
    assert.throws(() => loadAdapter(other, dir), /down_proj\.lora_A\.weight" has shape \[2,12\], the model needs \[2,16\]/);
    other.dispose();
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), '{"peft_type": "LORA", "r": 2, "rankk": 3}');
    assert.throws(() => loadAdapter(target, dir), /adapter_config.json: field "rankk" = 3 is not supported/);
    fs.rmSync(path.join(dir, 'adapter_config.json'));
    assert.throws(() => loadAdapter(target, dir), /adapter_config.json: cannot read: ENOENT/);
    const y1 = target.forward(x);
    assert.equal(maxAbsDiff(y0, y1), 0);
    tf.dispose([x, y0, y1]);
    target.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('F16 / BF16 storage loads back within half precision', () => {
  const dir = tmp();
  try {
    const peft = getPeftModel(new ToyModel(8, 12, 1), { kind: 'lora', init: false, targetModules: ['q_proj'] });
    savePretrained(peft, dir, { floatDtype: 'BF16' });
    const p2 = loadAdapter(new ToyModel(8, 12, 1), dir, { isTrainable: true });
    assert.equal(p2.countParameters().trainable, peft.countParameters().trainable, 'isTrainable');
    for (const [k, v] of peft.adapterTensors('default')) {
      const d = maxAbsDiff(v, p2.adapterTensors('default').get(k)!);
      assert.ok(d > 0 && d < 0.01, `${k}: ${d}`);
    }
    peft.dispose();
    p2.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
