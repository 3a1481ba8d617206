/**
 * Gradient checkpointing per decoder layer: the loss (with aux losses) and every trainable
 * gradient equal the plain path (also when only the last n layers are checkpointed), for LoRA,
 * MoR (dropout, balanced router), MoELoRA (top-k, load-balance loss, dropout) and full
 * fine-tuning; routing is observed once; no tensor leaks;
 * and the bytes held for the backward at the end of the forward, printed for both paths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { hostGrads } from './helpers.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import type { AdapterConfigInput } from '../../src/adapters/config.ts';
import type { ForwardContext, RoutingObserver } from '../../src/nn/context.ts';

await initBackend();

const shape = { vocabSize: 40, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 3, numAttentionHeads: 4, numKeyValueHeads: 2 };
const B = 2;
const T = 9;

/** Token ids, labels with ignored positions, and a left-padded attention mask. */
function batch(): { ids: tf.Tensor2D; labels: tf.Tensor2D; mask: tf.Tensor2D } {
  const ids: number[] = [];
  const labels: number[] = [];
  const mask: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pad = b === 1 && t < 2;
      ids.push(pad ? 0 : (7 * b + 3 * t + 1) % shape.vocabSize);
      labels.push(pad || t === 3 ? -100 : (5 * b + 11 * t + 2) % shape.vocabSize);
      mask.push(pad ? 0 : 1);
    }
  }
  return { ids: tf.tensor2d(ids, [B, T], 'int32'), labels: tf.tensor2d(labels, [B, T], 'int32'), mask: tf.tensor2d(mask, [B, T], 'int32') };
}

class CountingObserver implements RoutingObserver {
  calls = 0;
  rows = 0;
  record(_path: string, w: tf.Tensor2D): void {
    this.calls++;
    this.rows += w.shape[0];
  }
}

interface StepResult { loss: number; grads: Map<string, Float32Array>; observed: { calls: number; rows: number }; heldBytes: number }

/** Loss + aux (as the trainer sums them) and the gradients of every trainable tensor. */
function step(config: AdapterConfigInput, checkpointing: boolean | number, seed: number | undefined): StepResult {
  const peft = getPeftModel(createRandomModel(makeConfig(shape), 5), { ...config, seed: 2 } as AdapterConfigInput);
  const params = peft.trainableParameters();
  const { ids, labels, mask } = batch();
  const observer = new CountingObserver();
  const ctx: ForwardContext = { training: true, seed, auxLosses: [], routing: observer };
  const before = tf.memory().numBytes;
  let heldBytes = 0;
  const { value, grads } = tf.variableGrads(() => {
    const main = peft.model.loss(ids, labels, { attentionMask: mask, ctx, gradientCheckpointing: checkpointing });
    heldBytes = tf.memory().numBytes - before;
    return ctx.auxLosses.length ? (tf.addN([main, ...ctx.auxLosses]) as tf.Scalar) : main;
  }, params.map(([, v]) => v));
  for (const a of ctx.auxLosses) a.dispose();
  const out = hostGrads(params, grads);
  const loss = value.dataSync()[0];
  value.dispose();
  tf.dispose([ids, labels, mask]);
  peft.dispose();
  return { loss, grads: out, observed: { calls: observer.calls, rows: observer.rows }, heldBytes };
}

function assertSame(a: StepResult, b: StepResult, what: string): void {
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(a.loss), `${what}: loss ${a.loss} vs ${b.loss}`);
  assert.deepEqual([...b.grads.keys()].sort(), [...a.grads.keys()].sort(), `${what}: same gradient set`);
  for (const [n, ga] of a.grads) {
    const gb = b.grads.get(n)!;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < ga.length; i++) {
      diff = Math.max(diff, Math.abs(ga[i] - gb[i]));
      scale = Math.max(scale, Math.abs(ga[i]));
    }
    assert.ok(scale > 0, `${what}: ${n} has a non-zero gradient`);
    assert.ok(diff <= 1e-5 * scale, `${what}: ${n} max diff ${diff} (scale ${scale})`);
  }
}

// init: false gives B a random start (PEFT's debugging init), so every A gets a gradient too.
const cases: [string, AdapterConfigInput][] = [
  ['lora', { kind: 'lora', r: 4, init: false, dropout: 0.1, targetModules: 'all-linear' }],
  ['mor (dropout, balanced router)', { kind: 'mor', r: 4, init: false, numExperts: 3, dropout: 0.2, routerMode: 'balanced', loadBalanceCoef: 0.5 }],
  // no dropout: on the native path the fused MoR op, whose routing output carries the load-balance loss's gradient
  ['mor (balanced router, router bias, no dropout)', { kind: 'mor', r: 4, init: false, numExperts: 3, routerMode: 'balanced', routerBias: true, loadBalanceCoef: 0.5 }],
  ['moelora (top-k, load balance, dropout)', { kind: 'moelora', r: 2, init: false, numExperts: 4, topK: 2, loadBalance: true, loadBalanceCoef: 0.5, dropout: 0.1 }],
  ['full', { kind: 'full', targetModules: ['q_proj', 'down_proj'] }],
];

for (const [name, config] of cases) {
  for (const seed of [123, undefined]) {
    test(`checkpointing = plain path: ${name}, ${seed === undefined ? 'no ctx seed (fallback dropout streams)' : 'ctx seed'}`, () => {
      const before = tf.memory().numTensors;
      const plain = step(config, false, seed);
      const ckpt = step(config, true, seed);
      assertSame(plain, ckpt, name);
      assert.deepEqual(ckpt.observed, plain.observed, 'routing observed once per layer forward, not again in the recompute');
      assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    });
  }
}

test('checkpointing the last n layers (0 < n < layers) = plain path, and holds less than plain, more than all', () => {
  const [, config] = cases[1]; // MoR with dropout and a load-balance loss: the side effects cross the boundary
  const before = tf.memory().numTensors;
  const plain = step(config, false, 123);
  const all = step(config, true, 123);
  for (const n of [1, 2]) {
    const part = step(config, n, 123);
    assertSame(plain, part, `last ${n} of 3 layers`);
    assert.deepEqual(part.observed, plain.observed);
    assert.ok(part.heldBytes < plain.heldBytes && part.heldBytes > all.heldBytes, `held ${part.heldBytes}: between ${all.heldBytes} and ${plain.heldBytes}`);
  }
  assert.ok(step(config, 1, 123).heldBytes > step(config, 2, 123).heldBytes, 'more layers checkpointed, less held');
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
});

test('checkpointing: tensor count flat over repeated steps on one model; bytes held for the backward', () => {
  const peft = getPeftModel(createRandomModel(makeConfig({ ...shape, numHiddenLayers: 4 }), 5), { kind: 'mor', r: 4, numExperts: 2, routerMode: 'balanced', dropout: 0.1 });
  const vars = peft.trainableParameters().map(([, v]) => v);
  const { ids, labels, mask } = batch();
  const held: Record<string, number> = {};
  const counts: number[] = [];
  for (let i = 0; i < 4; i++) {
    for (const ck of [false, true]) {
      const ctx: ForwardContext = { training: true, seed: i, auxLosses: [] };
      const before = tf.memory().numBytes;
      const { value, grads } = tf.variableGrads(() => {
        const main = peft.model.loss(ids, labels, { attentionMask: mask, ctx, gradientCheckpointing: ck });
        held[ck ? 'checkpointed' : 'plain'] = tf.memory().numBytes - before;
        return tf.addN([main, ...ctx.auxLosses]) as tf.Scalar;
      }, vars);
      tf.dispose([value, ...Object.values(grads), ...ctx.auxLosses]);
    }
    counts.push(tf.memory().numTensors);
  }
  assert.ok(counts.every((c) => c === counts[0]), `tensor counts ${counts}`);
  assert.ok(held.checkpointed < held.plain, `held ${JSON.stringify(held)}`);
  console.log(`# bytes held for the backward at the end of the forward (4 layers, ${B}x${T}, hidden 32): plain ${held.plain}, checkpointed ${held.checkpointed}`);
  tf.dispose([ids, labels, mask]);
  peft.dispose();
});
