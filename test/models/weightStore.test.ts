/**
 * Models whose frozen matrices stay in the native weight store (outside the wasm heap) give the
 * same numbers as the same checkpoints loaded onto the heap: logits of every fixture, adapter
 * gradients (MoR with dropout, DoRA, full fine-tuning), merged weights; NaN/Inf in a base weight
 * is a user error naming the tensor, in both modes. Without the native addon the store is
 * unavailable and `weightStore: 'on'` must say so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { StoredWeight, weightStoreAvailable } from '../../src/backend/weightStore.ts';
import { loadModel } from '../../src/models/load.ts';
import type { LlamaForCausalLM } from '../../src/models/llama/model.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import type { AdapterConfigInput } from '../../src/adapters/config.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { FIXTURES, FIXTURE_NAMES, tempDir } from './helpers.ts';

await initBackend({ announce: false });
const available = weightStoreAvailable();
const BASE = path.resolve(FIXTURES, '..', '..', '..', 'models', 'base');
const ids = () => tf.tensor2d([[1, 5, 9, 20, 33, 7, 100, 3], [0, 0, 4, 8, 15, 16, 23, 42]], [2, 8], 'int32');
const mask = () => tf.tensor2d([[1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]], [2, 8], 'int32');

function storedCount(m: LlamaForCausalLM): number {
  return m.namedParameters().filter(([, p]) => p instanceof StoredWeight).length;
}

/** Loss and every trainable gradient of one step with adapter `cfg` on a fresh load of `dir`. */
async function step(dir: string, store: 'on' | 'off', cfg: AdapterConfigInput) {
  const model = await loadModel(dir, { weightStore: store });
  const peft = getPeftModel(model, cfg);
  const vars = peft.trainableParameters();
  const [x, m] = [ids(), mask()];
  const before = tf.memory().numTensors;
  const run = () => tf.variableGrads(() => {
    const ctx: ForwardContext = { training: true, auxLosses: [], seed: 11 };
    return model.loss(x, x, { attentionMask: m, ctx });
  }, vars.map(([, v]) => v));
  const { value, grads } = run();
  const out = { loss: value.dataSync()[0], grads: vars.map(([k, v]) => [k, Array.from(grads[v.name].dataSync())] as const) };
  tf.dispose([value, ...Object.values(grads)]);
  const again = run(); // a second step leaves no tensor behind
  tf.dispose([again.value, ...Object.values(again.grads)]);
  assert.equal(tf.memory().numTensors, before, `${cfg.kind}: tensors leaked across steps`);
  tf.dispose([x, m]);
  peft.dispose();
  return out;
}

if (!available) {
  test('without the native addon a model loads onto the heap, and weightStore "on" is a user error', async () => {
    await assert.rejects(loadModel(BASE, { weightStore: 'on' }), /weightStore "on" needs the native addon/);
    const m = await loadModel(BASE);
    assert.equal(storedCount(m), 0);
    m.dispose();
  });
} else {
  for (const name of [...FIXTURE_NAMES, 'base']) {
    test(`${name}: logits with the weight store equal the heap-loaded model's exactly`, async () => {
      const dir = name === 'base' ? BASE : path.join(FIXTURES, name);
      const [stored, heap] = [await loadModel(dir), await loadModel(dir, { weightStore: 'off' })];
      assert.ok(storedCount(stored) > 0, 'matrices are stored');
      assert.equal(storedCount(heap), 0);
      const [x, m] = [ids(), mask()];
      const vocab = stored.config.vocabSize;
      const safe = tf.tidy(() => tf.minimum(x, vocab - 1).toInt()) as tf.Tensor2D;
      const [a, b] = [stored.forward(safe, { attentionMask: m }), heap.forward(safe, { attentionMask: m })];
      assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
      tf.dispose([x, m, safe, a, b]);
      stored.dispose();
      heap.dispose();
    });
  }

  for (const cfg of [
    { kind: 'mor', r: 4, numExperts: 3, dropout: 0.1, targetModules: ['gate_proj', 'up_proj', 'down_proj'] },
    { kind: 'dora', r: 4, targetModules: ['q_proj', 'v_proj'] },
    { kind: 'full', targetModules: ['o_proj'] },
  ] as AdapterConfigInput[]) {
    test(`${cfg.kind} on the stored base model: loss and gradients equal the heap-loaded model's`, async () => {
      const a = await step(BASE, 'on', cfg);
      const b = await step(BASE, 'off', cfg);
      assert.equal(a.loss, b.loss);
      assert.deepEqual(a.grads, b.grads);
    });
  }

  test('merging LoRA into a stored base model gives the heap-loaded merge', async () => {
    const merged = async (store: 'on' | 'off') => {
      const peft = getPeftModel(await loadModel(BASE, { weightStore: store }), { kind: 'lora', r: 4, init: false, seed: 5, targetModules: ['up_proj'] } as AdapterConfigInput);
      const model = peft.mergeAndUnload();
      const w = model.getModule('model.layers.0.mlp.up_proj').param('weight');
      assert.ok(!(w instanceof StoredWeight), 'a merged weight is a new heap tensor');
      const values = Array.from(w.dataSync());
      model.dispose();
      return values;
    };
    assert.deepEqual(await merged('on'), await merged('off'));
  });
}

test('a NaN or Inf in a base weight is a user error naming the tensor and the count, in both modes', async () => {
  const dir = tempDir('mor-nan-');
  const src = path.join(FIXTURES, 'llama_gqa');
  fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  const { tensors } = readSafetensors(path.join(src, 'model.safetensors'));
  const w = tensors.get('model.layers.1.mlp.up_proj.weight')!;
  const data = Float32Array.from(w.data as Float32Array);
  data[3] = NaN;
  data[7] = -Infinity;
  tensors.set('model.layers.1.mlp.up_proj.weight', { ...w, data });
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  for (const store of available ? (['on', 'off'] as const) : (['off'] as const)) {
    await assert.rejects(loadModel(dir, { weightStore: store }),
      /model\.safetensors: tensor "model\.layers\.1\.mlp\.up_proj\.weight" has 2 non-finite values \(NaN\/Inf\) of 1536/, store);
  }
});

test('a model saved in shards (index + files) loads back with the same logits', async () => {
  const dir = tempDir('mor-shards-');
  const model = await loadModel(path.join(FIXTURES, 'llama_gqa'));
  const files = await model.savePretrained(dir, { maxShardBytes: 20_000 });
  const shards = files.filter((f) => /model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length > 1, `several shards (${files.map((f) => path.basename(f)).join(', ')})`);
  assert.ok(!fs.existsSync(path.join(dir, 'model.safetensors')));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(Object.keys(index.weight_map).sort(), model.namedParameters().map(([k]) => k).sort());
  const again = await loadModel(dir);
  const x = tf.tensor2d([[1, 5, 9, 20, 33, 7, 40, 3]], [1, 8], 'int32');
  const [a, b] = [model.forward(x), again.forward(x)];
  assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
  tf.dispose([x, a, b]);
  model.dispose();
  again.dispose();
});

test('without the store, a model whose float32 weights exceed the heap is refused before any weight is read', async () => {
  const dir = tempDir('mor-toobig-');
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'llama_gqa', 'config.json'), 'utf8'));
  // TinyLlama-1.1B widths: 4.4 GB as float32. The weight file holds nothing: it must not be read.
  Object.assign(config, { vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, head_dim: 64 });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  await writeSafetensors(path.join(dir, 'model.safetensors'), {});
  await assert.rejects(loadModel(dir, { weightStore: 'off' }),
    /float32 weights do not fit the 3\.4 GiB wasm heap; install OpenBLAS and rebuild the native addon/);
});
