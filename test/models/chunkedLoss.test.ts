/**
 * Chunked causal-LM loss: equals the full-logits path (lossChunkSize 0) in value and in every
 * trainable gradient, for chunk sizes that divide the rows or not, with ignored labels, left
 * padding, mean and sum, tied and untied heads, a trainable tied embedding, and with gradient
 * checkpointing; without a tape it only sums; no tensor leaks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { hostGrads } from './helpers.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { defaultLossChunkRows } from '../../src/models/llama/chunkedLoss.ts';
import type { LossOptions } from '../../src/models/llama/model.ts';

await initBackend();

const shape = { vocabSize: 50, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 };
const B = 3;
const T = 7;

function batch(dense: boolean): { ids: tf.Tensor2D; labels: tf.Tensor2D; mask: tf.Tensor2D } {
  const ids: number[] = [];
  const labels: number[] = [];
  const mask: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pad = b === 2 && t < 3;
      ids.push(pad ? 0 : (13 * b + 5 * t + 2) % shape.vocabSize);
      // dense: most positions labelled (the full-logits path when unchunked); else a few.
      const ignored = pad || (dense ? t === 4 && b === 0 : t < 5);
      labels.push(ignored ? -100 : (3 * b + 7 * t + 1) % shape.vocabSize);
      mask.push(pad ? 0 : 1);
    }
  }
  return { ids: tf.tensor2d(ids, [B, T], 'int32'), labels: tf.tensor2d(labels, [B, T], 'int32'), mask: tf.tensor2d(mask, [B, T], 'int32') };
}

interface Run { loss: number; grads: Map<string, Float32Array> }

function run(tied: boolean, dense: boolean, opts: LossOptions, trainEmbedding = false): Run {
  const model = createRandomModel(makeConfig({ ...shape, tieWordEmbeddings: tied }), 4);
  const peft = getPeftModel(model, { kind: 'lora', r: 2, init: false, targetModules: ['q_proj', 'down_proj'], seed: 1 });
  let extra: tf.Variable | undefined;
  if (trainEmbedding) {
    const emb = model.getModule('model.embed_tokens');
    extra = tf.variable(emb.param('weight'), true);
    emb.replaceParam('weight', extra).dispose();
  }
  const params = peft.trainableParameters();
  if (extra) params.push(['embed', extra]);
  const { ids, labels, mask } = batch(dense);
  const ctx = { training: true, seed: 3, auxLosses: [] };
  const { value, grads } = tf.variableGrads(() => peft.model.loss(ids, labels, { attentionMask: mask, ctx, ...opts }), params.map(([, v]) => v));
  const out = hostGrads(params, grads);
  const loss = value.dataSync()[0];
  value.dispose();
  tf.dispose([ids, labels, mask]);
  peft.dispose();
  return { loss, grads: out };
}

function assertClose(a: Run, b: Run, what: string): void {
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * Math.abs(a.loss), `${what}: loss ${a.loss} vs ${b.loss}`);
  assert.deepEqual([...b.grads.keys()].sort(), [...a.grads.keys()].sort());
  for (const [n, ga] of a.grads) {
    const gb = b.grads.get(n)!;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < ga.length; i++) {
      diff = Math.max(diff, Math.abs(ga[i] - gb[i]));
      scale = Math.max(scale, Math.abs(ga[i]));
    }
    assert.ok(scale > 0, `${what}: ${n} has a gradient`);
    assert.ok(diff <= 1e-5 * scale, `${what}: ${n} max diff ${diff} (scale ${scale})`);
  }
}

for (const tied of [false, true]) {
  for (const dense of [true, false]) {
    for (const reduction of ['mean', 'sum'] as const) {
      test(`chunked loss = full logits: ${tied ? 'tied' : 'untied'} head, ${dense ? 'dense' : 'sparse'} labels, ${reduction}`, () => {
        const before = tf.memory().numTensors;
        const ref = run(tied, dense, { reduction, lossChunkSize: 0 });
        for (const chunk of [1, 4, 5, 1000]) assertClose(ref, run(tied, dense, { reduction, lossChunkSize: chunk }), `chunk ${chunk}`);
        assertClose(ref, run(tied, dense, { reduction }), 'default chunk');
        assert.equal(tf.memory().numTensors, before);
      });
    }
  }
}

test('chunked loss: a trainable tied embedding gets the head gradient summed over chunks', () => {
  const before = tf.memory().numTensors;
  const ref = run(true, true, { lossChunkSize: 0 }, true);
  assertClose(ref, run(true, true, { lossChunkSize: 3 }, true), 'trainable tied embedding');
  assert.equal(tf.memory().numTensors, before);
});

test('chunked loss with gradient checkpointing = neither', () => {
  const ref = run(false, true, { lossChunkSize: 0 });
  assertClose(ref, run(false, true, { lossChunkSize: 4, gradientCheckpointing: true }), 'both');
});

test('chunked loss without a tape: the same value, nothing kept', () => {
  const model = createRandomModel(makeConfig(shape), 4);
  const { ids, labels, mask } = batch(true);
  // Warm-up: on the pure-wasm path frozen projections keep their Wᵀ from the first call on.
  model.loss(ids, labels, { attentionMask: mask, lossChunkSize: 4 }).dispose();
  const before = tf.memory().numTensors;
  const a = model.loss(ids, labels, { attentionMask: mask, lossChunkSize: 0 });
  const b = model.loss(ids, labels, { attentionMask: mask, lossChunkSize: 4 });
  assert.ok(Math.abs(a.dataSync()[0] - b.dataSync()[0]) <= 1e-6 * Math.abs(a.dataSync()[0]));
  tf.dispose([a, b]);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([ids, labels, mask]);
  model.dispose();
});

test('default chunk rows: 2^24 / vocab, at least 64', () => {
  assert.equal(defaultLossChunkRows(49152), 341); // 16777216 / 49152 = 341.3
  assert.equal(defaultLossChunkRows(151936), 110); // 16777216 / 151936 = 110.4
  assert.equal(defaultLossChunkRows(1_000_000), 64);
});
