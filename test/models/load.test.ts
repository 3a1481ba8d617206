/**
 * loadModel: single-file and sharded checkpoints, F16/BF16, clear UserErrors for missing files,
 * unsupported model types, missing / mis-shaped / extra weights (no tensor leaked on failure);
 * savePretrained -> loadModel round trip (F32 exact, F16/BF16 rounded, tied weight once).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { UserError } from '../../src/errors.ts';
import { FIXTURES, tempDir } from './helpers.ts';

await initBackend();

const root = tempDir('mor-load-');
const SRC = path.join(FIXTURES, 'llama_gqa');

/** Copy the llama_gqa fixture, letting `edit` change its tensors before writing. */
function variant(name: string, edit: (t: Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(SRC, 'config.json'), path.join(dir, 'config.json'));
  const t = readSafetensors(path.join(SRC, 'model.safetensors')).tensors as Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>;
  edit(t);
  writeSafetensors(path.join(dir, 'model.safetensors'), t);
  return dir;
}

async function rejects(dir: string, re: RegExp): Promise<void> {
  const before = tf.memory().numTensors;
  await assert.rejects(loadModel(dir), (e: unknown) => {
    assert.ok(e instanceof UserError, `UserError expected, got ${e}`);
    assert.match((e as Error).message, re);
    return true;
  });
  assert.equal(tf.memory().numTensors, before, 'failed load leaked tensors');
}

test('missing directory, config.json, weights file; unsupported model_type', async () => {
  await rejects(path.join(root, 'nope'), /model directory not found/);
  const empty = path.join(root, 'empty');
  fs.mkdirSync(empty);
  await rejects(empty, /config\.json not found/);
  fs.copyFileSync(path.join(SRC, 'config.json'), path.join(empty, 'config.json'));
  await rejects(empty, /no model\.safetensors or model\.safetensors\.index\.json/);
  const gpt = path.join(root, 'gpt');
  fs.mkdirSync(gpt);
  fs.writeFileSync(path.join(gpt, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 10 }));
  await rejects(gpt, /unsupported model_type "gpt2"/);
});

test('missing weight is named with its expected shape', async () => {
  const dir = variant('missing', (t) => t.delete('model.layers.1.mlp.up_proj.weight'));
  await rejects(dir, /missing weight model\.layers\.1\.mlp\.up_proj\.weight \(expected shape \[48,32\]\)/);
});

test('mis-shaped weight names the tensor, found and expected shapes', async () => {
  const dir = variant('misshaped', (t) => {
    t.set('model.layers.0.self_attn.k_proj.weight', { dtype: 'F32', shape: [32, 32], data: new Float32Array(1024) });
  });
  await rejects(dir, /weight model\.layers\.0\.self_attn\.k_proj\.weight has shape \[32,32\], expected \[16,32\]/);
});

test('unexpected extra weights are reported; rotary inv_freq buffers are ignored', async () => {
  const dir = variant('extra', (t) => t.set('model.layers.0.mlp.extra.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) }));
  await rejects(dir, /unexpected weights .*model\.layers\.0\.mlp\.extra\.weight/);
  const ok = variant('invfreq', (t) => t.set('model.layers.0.self_attn.rotary_emb.inv_freq', { dtype: 'F32', shape: [4], data: new Float32Array(4) }));
  (await loadModel(ok)).dispose();
});

test('sharded checkpoint (model.safetensors.index.json) loads the same weights', async () => {
  const dir = path.join(root, 'sharded');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(SRC, 'config.json'), path.join(dir, 'config.json'));
  const t = readSafetensors(path.join(SRC, 'model.safetensors')).tensors;
  const names = [...t.keys()];
  const weightMap: Record<string, string> = {};
  const shards = [new Map(), new Map()];
  names.forEach((n, i) => {
    const s = i < names.length / 2 ? 0 : 1;
    shards[s].set(n, t.get(n));
    weightMap[n] = `model-0000${s + 1}-of-00002.safetensors`;
  });
  shards.forEach((m, s) => writeSafetensors(path.join(dir, `model-0000${s + 1}-of-00002.safetensors`), m));
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const a = await loadModel(dir);
  const b = await loadModel(SRC);
  const pb = new Map(b.namedParameters());
  for (const [n, p] of a.namedParameters()) assert.deepEqual(p.dataSync(), pb.get(n)!.dataSync(), n);
  a.dispose();
  b.dispose();
  // a shard listed in the index but absent
  fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
  await rejects(dir, /shard model-00002-of-00002\.safetensors .* not found/);
});

for (const tied of [false, true]) {
  test(`savePretrained -> loadModel round trip (${tied ? 'tied' : 'untied'}; F32 exact, F16/BF16 rounded)`, async () => {
    const cfg = makeConfig({
      modelType: 'qwen2', vocabSize: 30, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4,
      numKeyValueHeads: 2, tieWordEmbeddings: tied, initializerRange: 0.2, eosTokenId: 2,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 },
    });
    const m = createRandomModel(cfg, 21);
    const ids = tf.tensor2d([[1, 4, 9, 16, 25]], undefined, 'int32');
    const ref = m.forward(ids).dataSync();
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const dir = path.join(root, `save-${tied}-${dtype}`);
      await m.savePretrained(dir, { dtype });
      const cfgJson = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
      assert.equal(cfgJson.model_type, 'qwen2');
      assert.equal(cfgJson.tie_word_embeddings, tied);
      assert.deepEqual(cfgJson.architectures, ['Qwen2ForCausalLM']);
      const file = readSafetensors(path.join(dir, 'model.safetensors'));
      assert.equal(file.tensors.has('lm_head.weight'), !tied, 'tied weight written once');
      const l = await loadModel(dir);
      assert.deepEqual({ ...l.config, extra: {} }, { ...m.config, extra: {} });
      assert.equal(l.config.extra.torch_dtype, { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype]);
      const out = l.forward(ids).dataSync();
      let d = 0;
      for (let i = 0; i < out.length; i++) d = Math.max(d, Math.abs(out[i] - ref[i]));
      if (dtype === 'F32') assert.equal(d, 0, 'F32 round trip is exact');
      else assert.ok(d < (dtype === 'F16' ? 0.01 : 0.1) && d > 0, `${dtype} diff ${d}`);
      l.dispose();
    }
    ids.dispose();
    m.dispose();
  });
}
