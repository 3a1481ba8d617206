/**
 * Against Hugging Face transformers 5.17 itself: tiny checkpoints built and saved by
 * `save_pretrained` (scripts/fixtures/make_hf5_fixtures.py) with transformers' logits and greedy
 * generations. Covers the transformers 5 config layout (`rope_parameters`, `layer_types`), rope
 * types llama3 / yarn / dynamic, Qwen2 (tied, biases, theta 1e6, sliding layers) and Mistral
 * (sliding window shorter than the sequence), left padding, and a KV cache bounded by the window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { parseHfConfig, toHfConfig } from '../../src/models/llama/config.ts';
import { KVCache } from '../../src/models/llama/kvCache.ts';
import { generate } from '../../src/generate/generate.ts';
import { FIXTURES, maxAbsDiff } from './helpers.ts';

await initBackend();

const HF5 = ['llama3', 'qwen2_tied', 'qwen2_sliding', 'mistral_sliding', 'llama_yarn', 'llama_dynamic'].map((n) => `hf5_${n}`);

interface Hf5Expected {
  logits: { input_ids: number[][]; attention_mask: number[][]; shape: [number, number, number]; logits: number[] };
  generate: { input_ids: number[][]; attention_mask: number[][]; max_new_tokens: number; new_tokens: number[][] };
}

function readJson<T>(...p: string[]): T {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, ...p), 'utf8')) as T;
}

/** Mean cross-entropy of next-token prediction over the real tokens of row `r`, from flat logits `[B, T, V]`. */
function rowLoss(logits: ArrayLike<number>, shape: [number, number, number], ids: number[][], mask: number[][], r: number): number {
  const [, t, v] = shape;
  let sum = 0;
  let n = 0;
  for (let i = 0; i + 1 < t; i++) {
    if (!mask[r][i] || !mask[r][i + 1]) continue;
    const off = (r * t + i) * v;
    let m = -Infinity;
    for (let k = 0; k < v; k++) m = Math.max(m, logits[off + k]);
    let z = 0;
    for (let k = 0; k < v; k++) z += Math.exp(logits[off + k] - m);
    sum += m + Math.log(z) - logits[off + ids[r][i + 1]];
    n++;
  }
  return sum / n;
}

for (const name of HF5) {
  test(`${name}: logits, loss and greedy generation equal transformers 5.17`, async () => {
    const model = await loadModel(path.join(FIXTURES, name));
    const exp = readJson<Hf5Expected>(name, 'expected.json');
    tf.tidy(() => void model.forward(tf.tensor2d([[1, 2]], undefined, 'int32'))); // warm-up (W^T caches on pure wasm)
    const before = tf.memory().numTensors;

    const { input_ids: ids, attention_mask: mask, shape } = exp.logits;
    const logits = tf.tidy(() =>
      model.forward(tf.tensor2d(ids, undefined, 'int32'), { attentionMask: tf.tensor2d(mask, undefined, 'int32') }),
    );
    assert.deepEqual(logits.shape, shape);
    // Logits at padding positions are meaningless (transformers' too): real tokens only.
    const diff = maxAbsDiff(logits.dataSync(), exp.logits.logits, shape, (b, t) => mask[b][t] === 1);
    assert.ok(diff <= 1e-4, `max |logits - transformers| = ${diff}`);
    logits.dispose();

    // The loss path (shared hidden states, per-layer masks) against the cross-entropy of transformers' logits.
    for (const r of [0, 1]) {
      const loss = tf.tidy(() =>
        model.loss(tf.tensor2d([ids[r]], undefined, 'int32'), tf.tensor2d([ids[r]], undefined, 'int32'), {
          attentionMask: tf.tensor2d([mask[r]], undefined, 'int32'),
        }),
      );
      const want = rowLoss(exp.logits.logits, shape, ids, mask, r);
      const got = loss.dataSync()[0];
      loss.dispose();
      // Dynamic rope depends on the longest row of the batch: row 1 alone is a different computation.
      if (!(name === 'hf5_llama_dynamic' && r === 1)) assert.ok(Math.abs(got - want) <= 1e-4, `row ${r}: loss ${got} vs ${want}`);
    }

    const g = exp.generate;
    const prompts = g.input_ids.map((row, r) => row.filter((_, i) => g.attention_mask[r][i] === 1));
    assert.ok(prompts[1].length < prompts[0].length, 'the fixture batch is left-padded');
    const out = await generate(model, null, prompts, { maxNewTokens: g.max_new_tokens, eosTokenIds: [] });
    assert.deepEqual(out.tokenIds, g.new_tokens);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    model.dispose();
  });
}

test('sliding layers: the KV cache holds at most window - 1 positions and decodes the same logits', async () => {
  for (const name of ['hf5_qwen2_sliding', 'hf5_mistral_sliding']) {
    const model = await loadModel(path.join(FIXTURES, name));
    const cfg = model.config;
    const window = cfg.slidingWindow!;
    const seq = readJson<Hf5Expected>(name, 'expected.json').logits.input_ids[0].slice(0, 3 * window);
    tf.tidy(() => void model.forward(tf.tensor2d([[1, 2]], undefined, 'int32')));
    const before = tf.memory().numTensors;
    const full = tf.tidy(() => model.forward(tf.tensor2d([seq], undefined, 'int32')));
    const v = cfg.vocabSize;
    const fullData = full.dataSync();
    full.dispose();
    // The window-bounded cache, and a plain one that holds everything (the mask hides what slid out).
    for (const bounded of [true, false]) {
      const cache = bounded ? KVCache.forConfig(cfg) : new KVCache(cfg.numHiddenLayers);
      const pre = 2;
      tf.dispose(tf.tidy(() => model.forward(tf.tensor2d([seq.slice(0, pre)], undefined, 'int32'), { cache })));
      let worst = 0;
      for (let t = pre; t < seq.length; t++) {
        const step = tf.tidy(() => model.forward(tf.tensor2d([[seq[t]]], undefined, 'int32'), { cache }));
        const row = step.dataSync();
        step.dispose();
        for (let k = 0; k < v; k++) worst = Math.max(worst, Math.abs(row[k] - fullData[t * v + k]));
        assert.equal(cache.seqLen, t + 1);
        cfg.layerTypes.forEach((type, l) => {
          const held = bounded && type === 'sliding_attention' ? Math.min(t + 1, window - 1) : t + 1;
          assert.equal(cache.heldLength(l), held, `${name} layer ${l} at ${t}`);
        });
      }
      assert.ok(worst <= 1e-4, `${name} (bounded ${bounded}): cached decoding differs by ${worst}`);
      cache.dispose();
    }
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    model.dispose();
  }
});

test('config.json as transformers 5.17 wrote it: layer types, windows, rope, and a round trip', () => {
  const read = (name: string) => readJson<Record<string, unknown>>(name, 'config.json');
  const q = parseHfConfig(read('hf5_qwen2_sliding'));
  assert.deepEqual(q.layerTypes, ['full_attention', 'sliding_attention', 'sliding_attention']);
  assert.equal(q.slidingWindow, 5);
  // Without layer_types, Qwen2 derives them from use_sliding_window and max_window_layers.
  const { layer_types: _, ...noTypes } = read('hf5_qwen2_sliding');
  assert.deepEqual(parseHfConfig(noTypes).layerTypes, q.layerTypes);
  assert.deepEqual(parseHfConfig({ ...noTypes, use_sliding_window: false }).layerTypes, ['full_attention', 'full_attention', 'full_attention']);
  const m = parseHfConfig(read('hf5_mistral_sliding'));
  assert.deepEqual([m.layerTypes, m.slidingWindow], [['sliding_attention', 'sliding_attention'], 4]);
  assert.equal(parseHfConfig({ ...read('hf5_mistral_sliding'), sliding_window: null }).slidingWindow, undefined);
  const l3 = parseHfConfig(read('hf5_llama3'));
  assert.deepEqual([l3.headDim, l3.ropeTheta, l3.ropeLayout], [16, 10000, 'rope_parameters']);
  assert.deepEqual(l3.ropeScaling, { type: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
  assert.equal(parseHfConfig(read('hf5_qwen2_tied')).ropeTheta, 1e6);

  const hf5 = HF5;
  const legacy = ['llama_gqa', 'llama3_tied', 'llama_linear_bias_bf16', 'qwen2_tied_f16', 'mistral_gqa'];
  for (const name of [...hf5, ...legacy]) {
    const json = read(name);
    const c = parseHfConfig(json);
    const back = toHfConfig(c);
    assert.deepEqual(parseHfConfig(back), c, `${name}: parse(toHfConfig(c)) = c`);
    // Every key read comes back with its value, in the layout it was read in (4.x rope_scaling
    // dicts gain `rope_type` next to `type`, which is the same setting).
    for (const [k, v] of Object.entries(json)) {
      if (k === 'rope_scaling' && v && typeof v === 'object' && !('rope_type' in v)) continue;
      assert.deepEqual(back[k], v, `${name}: ${k}`);
    }
    assert.equal('rope_parameters' in back, hf5.includes(name), `${name}: rope layout preserved`);
  }
});

test('every rope type gives transformers 5.17 cos/sin tables (LlamaRotaryEmbedding)', async () => {
  const { RotaryEmbedding, ropeFrequencies } = await import('../../src/models/llama/rope.ts');
  const cases = readJson<{ cases: { name: string; config: Record<string, unknown>; positions: number; attention_scaling: number; inv_freq: number[]; cos: number[]; sin: number[] }[] }>('hf5_rope_cases.json').cases;
  const before = tf.memory().numTensors;
  for (const c of cases) {
    const cfg = parseHfConfig(c.config, c.name);
    const fr = ropeFrequencies(cfg, c.positions);
    assert.ok(Math.abs(fr.attentionScaling - c.attention_scaling) <= 1e-6, `${c.name}: attention scaling ${fr.attentionScaling} vs ${c.attention_scaling}`);
    fr.invFreq.forEach((f, i) => assert.ok(Math.abs(f - c.inv_freq[i]) <= 1e-6 * c.inv_freq[i], `${c.name}: inv_freq[${i}] ${f} vs ${c.inv_freq[i]}`));
    const { cos, sin } = tf.tidy(() => new RotaryEmbedding(cfg).cosSin(tf.range(0, c.positions, 1, 'int32').reshape([1, c.positions]) as tf.Tensor2D));
    const shape: [number, number, number] = [1, c.positions, cfg.headDim];
    const dc = maxAbsDiff(cos.dataSync(), c.cos, shape);
    const ds = maxAbsDiff(sin.dataSync(), c.sin, shape);
    assert.ok(dc <= 2e-5 && ds <= 2e-5, `${c.name}: cos diff ${dc}, sin diff ${ds}`);
    tf.dispose([cos, sin]);
  }
  assert.ok(cases.some((c) => c.attention_scaling !== 1), 'yarn scales cos/sin');
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});

const base = {
  model_type: 'llama', vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 8,
};

test('fields that would change the math and that we do not implement are one-line UserErrors naming them', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ partial_rotary_factor: 0.5 }, /config\.json: partial_rotary_factor = 0\.5 \(rotary embeddings on part of the head\) is not supported/],
    [{ rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.25 } }, /rope_parameters\.partial_rotary_factor = 0\.25/],
    [{ attn_logit_softcapping: 50 }, /attn_logit_softcapping = 50 \(attention logit soft-capping\)/],
    [{ final_logit_softcapping: 30 }, /final_logit_softcapping = 30/],
    [{ query_pre_attn_scalar: 256 }, /query_pre_attn_scalar = 256/],
    [{ attention_multiplier: 0.5 }, /attention_multiplier = 0\.5/],
    [{ embedding_multiplier: 12 }, /embedding_multiplier = 12/],
    [{ residual_multiplier: 0.2 }, /residual_multiplier = 0\.2/],
    [{ logits_scaling: 8 }, /logits_scaling = 8/],
    [{ logit_scale: 0.06 }, /logit_scale = 0\.06/],
    [{ use_qk_norm: true }, /use_qk_norm = true/],
    [{ qk_layernorm: true }, /qk_layernorm = true/],
    [{ clip_qkv: 8 }, /clip_qkv = 8/],
    [{ no_rope_layers: [1, 0] }, /no_rope_layers = \[1,0\]/],
    [{ no_rope_layer_interval: 4 }, /no_rope_layer_interval = 4/],
    [{ attention_chunk_size: 8192 }, /attention_chunk_size = 8192/],
    [{ sliding_window_pattern: 6 }, /sliding_window_pattern = 6/],
    [{ use_bidirectional_attention: true }, /use_bidirectional_attention = true/],
    [{ quantization_config: { quant_method: 'gptq' } }, /quantization_config = .*\(quantized weights\)/],
    [{ rope_parameters: { rope_type: 'longrope', rope_theta: 1e4 } }, /rope_parameters\.rope_type "longrope" is not supported \(supported: default, linear, dynamic, llama3, yarn\)/],
    [{ rope_scaling: { type: 'su', factor: 2 } }, /rope_scaling\.type "su" is not supported/],
    [{ rope_parameters: { full_attention: { rope_type: 'default' }, sliding_attention: { rope_type: 'default' } } }, /rope_parameters: rope parameters per layer type are not supported/],
    [{ rope_parameters: { rope_type: 'yarn', rope_theta: 1e4 } }, /rope_parameters\.factor is required for rope type "yarn"/],
    [{ model_type: 'qwen2', layer_types: ['full_attention', 'sliding_attention'] }, /layer_types has sliding_attention layers but no sliding window/],
    [{ model_type: 'qwen2', layer_types: ['full_attention'] }, /layer_types has 1 entries, num_hidden_layers is 2/],
  ];
  for (const [fields, re] of cases) {
    assert.throws(() => parseHfConfig({ ...base, ...fields }), (e: unknown) => {
      assert.ok(e instanceof Error && e.name === 'UserError', `${JSON.stringify(fields)}: not a UserError`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  }
  // Bookkeeping and values that leave the math unchanged pass (and come back on save).
  const ok = {
    ...base, dtype: 'bfloat16', torch_dtype: 'bfloat16', transformers_version: '5.17.0', use_cache: true, attention_dropout: 0.1,
    pretraining_tp: 2, partial_rotary_factor: 1, attn_logit_softcapping: null, use_qk_norm: false, no_rope_layers: [1, 1],
    sliding_window: 4096, // LLaMA has no sliding window in transformers: bookkeeping there
  };
  const c = parseHfConfig(ok);
  assert.deepEqual(c.layerTypes, ['full_attention', 'full_attention']);
  assert.equal(toHfConfig(c).pretraining_tp, 2);
});
