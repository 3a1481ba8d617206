/** config.json parsing: defaults, camelCase conversion, model-type differences, errors naming the field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHfConfig, toHfConfig } from '../../src/models/llama/config.ts';
import { UserError } from '../../src/errors.ts';

const base = {
  model_type: 'llama', vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
  num_attention_heads: 8,
};

test('defaults follow HF (MHA when num_key_value_heads is absent, head_dim = hidden / heads)', () => {
  const c = parseHfConfig(base);
  assert.equal(c.numKeyValueHeads, 8);
  assert.equal(c.headDim, 8);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.qkvBias, false);
  assert.equal(c.ropeScaling, undefined);
});

test('qwen2 has q/k/v biases but no o_proj bias; llama attention_bias covers all four', () => {
  const q = parseHfConfig({ ...base, model_type: 'qwen2' });
  assert.deepEqual([q.qkvBias, q.oBias, q.mlpBias], [true, false, false]);
  const l = parseHfConfig({ ...base, attention_bias: true, mlp_bias: true });
  assert.deepEqual([l.qkvBias, l.oBias, l.mlpBias], [true, true, true]);
});

test('rope_scaling: llama3 and linear parsed; "type" and "rope_type" both accepted; unknown types rejected', () => {
  const l3 = parseHfConfig({
    ...base,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  });
  assert.deepEqual(l3.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  assert.deepEqual(parseHfConfig({ ...base, rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling, { type: 'linear', factor: 2 });
  assert.throws(() => parseHfConfig({ ...base, rope_scaling: { type: 'longrope', factor: 2 } }), /rope_scaling\.type "longrope" is not supported/);
  assert.throws(() => parseHfConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8 } }), /rope_scaling\.low_freq_factor is required/);
});

test('errors are UserErrors naming the problem', () => {
  assert.throws(() => parseHfConfig({ ...base, model_type: 'gpt2' }, 'x/config.json'), (e: unknown) =>
    e instanceof UserError && /x\/config\.json: unsupported model_type "gpt2"/.test(e.message));
  assert.throws(() => parseHfConfig({ ...base, hidden_size: 'big' }), /field "hidden_size"/);
  assert.throws(() => parseHfConfig({ ...base, num_key_value_heads: 3 }), /multiple of num_key_value_heads/);
  assert.throws(() => parseHfConfig([]), UserError);
});

test('toHfConfig round-trips and keeps unknown keys', () => {
  const json = { ...base, num_key_value_heads: 2, tie_word_embeddings: true, eos_token_id: [1, 2], foo: 'bar', rope_scaling: { type: 'linear', factor: 3 } };
  const c = parseHfConfig(json);
  const back = toHfConfig(c);
  assert.equal(back.foo, 'bar');
  assert.deepEqual(back.architectures, ['LlamaForCausalLM']);
  assert.deepEqual(parseHfConfig(back), c);
});
