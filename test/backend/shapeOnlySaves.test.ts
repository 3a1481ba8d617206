/**
 * Shape-only saves on the gradient tape: with them on, every gradient of a model's loss (LoRA and
 * MoR adapters, tied head, attention mask from padding) equals, bit for bit, the gradient with
 * tfjs' own saving; each kernel's gradient alone equals the tfjs one, and the forward keeps
 * fewer bytes alive; switching off restores tfjs' methods.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { setShapeOnlySaves, shapeOnlySavesOn } from '../../src/backend/shapeOnlySaves.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { hostGrads } from '../models/helpers.ts';

await initBackend({ announce: false });

test('each op gradient through reshape, add, sub, mean, sum, concat and slice equals tfjs saving', () => {
  assert.equal(shapeOnlySavesOn(), true, 'on after initBackend');
  const a = tf.variable(tf.randomNormal([3, 4, 5], 0, 1, 'float32', 1));
  const b = tf.variable(tf.randomNormal([4, 5], 0, 1, 'float32', 2));
  const f = () => {
    const r = tf.reshape(a, [12, 5]);
    const s = tf.sub(tf.add(a, b), tf.mean(a, 1, true)); // broadcasts both ways
    const c = tf.concat([r, tf.reshape(s, [12, 5])], 0).slice([2, 1], [15, 3]);
    return tf.sum(tf.mul(tf.sum(c, 1), tf.linspace(0.5, 2, 15))) as tf.Scalar;
  };
  const run = () => {
    const { value, grads } = tf.variableGrads(f, [a, b]);
    const out = [value.dataSync()[0], ...[a, b].map((v) => Array.from(grads[v.name].dataSync()))];
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
  const ours = run();
  setShapeOnlySaves(false);
  try {
    assert.equal(shapeOnlySavesOn(), false);
    assert.deepEqual(run(), ours);
  } finally {
    setShapeOnlySaves(true);
  }
  tf.dispose([a, b]);
});

test('model loss gradients are bit-identical with and without shape-only saves, and the forward keeps less', () => {
  const config = makeConfig({ vocabSize: 64, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: true });
  for (const adapter of [
    { kind: 'lora', r: 4, alpha: 8, init: 'gaussian', targetModules: ['q_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj'] },
    { kind: 'mor', r: 4, alpha: 8, numExperts: 3, init: 'gaussian', targetModules: ['gate_proj', 'up_proj', 'down_proj'] },
  ] as const) {
    const model = createRandomModel(config, 3);
    const peft = getPeftModel(model, adapter as never);
    const params = peft.trainableParameters();
    const ids = tf.tensor2d([[5, 9, 13, 2, 7, 1], [0, 0, 4, 8, 15, 16]], [2, 6], 'int32');
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], [2, 6], 'int32');
    const run = () => {
      let kept = 0;
      const before = tf.memory().numBytes;
      const { value, grads } = tf.variableGrads(() => {
        const l = model.loss(ids, ids, { attentionMask: mask, ctx: { training: true, auxLosses: [], seed: 1 } });
        kept = tf.memory().numBytes - before;
        return l;
      }, params.map(([, v]) => v));
      const loss = value.dataSync()[0];
      const g = hostGrads(params, grads);
      tf.dispose([value, ...Object.values(grads)]);
      return { loss, g, kept };
    };
    const on = run();
    setShapeOnlySaves(false);
    let off;
    try {
      off = run();
    } finally {
      setShapeOnlySaves(true);
    }
    assert.equal(on.loss, off.loss, `${adapter.kind}: loss`);
    for (const [name, g] of off.g) assert.deepEqual(on.g.get(name), g, `${adapter.kind}: gradient of ${name}`);
    assert.ok(on.kept < 0.8 * off.kept, `${adapter.kind}: the forward kept ${on.kept} bytes with shape-only saves, ${off.kept} without`);
    tf.dispose([ids, mask]);
    peft.dispose();
  }
});
