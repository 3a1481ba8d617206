/**
 * Numerics against PyTorch: tiny LLaMA / Qwen2 / Mistral checkpoints written by
 * scripts/fixtures/make_llama_fixtures.py with logits and losses from the float64 reference in
 * scripts/fixtures/llama_ref.py. Covers GQA, rope scaling (llama3, linear), tied embeddings,
 * q/k/v and MLP biases, F16/BF16 storage, left and right padding, explicit position ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { FIXTURES, FIXTURE_NAMES, maxAbsDiff, readExpected } from './helpers.ts';

await initBackend();

for (const name of FIXTURE_NAMES) {
  test(`${name}: logits and loss match the PyTorch reference`, async () => {
    const beforeLoad = tf.memory().numTensors;
    const model = await loadModel(path.join(FIXTURES, name));
    // Warm-up: on the pure-wasm path frozen layers cache W^T on first use (model-owned state).
    tf.tidy(() => void model.forward(tf.tensor2d([[1, 2]], undefined, 'int32')));
    const before = tf.memory().numTensors;
    for (const c of readExpected(name)) {
      const ids = tf.tensor2d(c.input_ids, undefined, 'int32');
      const mask = c.attention_mask ? tf.tensor2d(c.attention_mask, undefined, 'int32') : undefined;
      const pos = c.position_ids ? tf.tensor2d(c.position_ids, undefined, 'int32') : undefined;
      const labels = tf.tensor2d(c.labels, undefined, 'int32');
      const logits = model.forward(ids, { attentionMask: mask, positionIds: pos });
      assert.deepEqual(logits.shape, c.shape);
      // Logits at padding positions are meaningless (HF's are too): compare real tokens only.
      const keep = (b: number, t: number) => !c.attention_mask || c.attention_mask[b][t] === 1;
      const diff = maxAbsDiff(logits.dataSync(), c.logits, c.shape, keep);
      assert.ok(diff <= 1e-4, `${c.name}: max abs diff ${diff}`);
      const loss = model.loss(ids, labels, { attentionMask: mask, positionIds: pos });
      const l = loss.dataSync()[0];
      assert.ok(Math.abs(l - c.loss) <= 1e-4, `${c.name}: loss ${l} vs ${c.loss}`);
      tf.dispose([ids, mask, pos, labels, logits, loss].filter((t) => t !== undefined));
    }
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    model.dispose();
    assert.equal(tf.memory().numTensors, beforeLoad, 'dispose frees parameters and caches');
  });
}
