/** Module tree = HF keys, tied embeddings, ctx threading, loss semantics, gradients, random init. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import type { LlamaForCausalLM } from '../../src/models/llama/model.ts';
import { Linear, type LinearLike } from '../../src/nn/linear.ts';
import { Module } from '../../src/nn/module.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { causalLmLoss, labelledPositions, maskUnpredictable } from '../../src/models/llama/loss.ts';

await initBackend();

const small = { vocabSize: 20, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 };

test('parameter names equal HF checkpoint keys (untied llama)', () => {
  const m = createRandomModel(makeConfig(small), 1);
  const expected = ['model.embed_tokens.weight'];
  for (let i = 0; i < 2; i++) {
    for (const p of ['q', 'k', 'v', 'o']) expected.push(`model.layers.${i}.self_attn.${p}_proj.weight`);
    for (const p of ['gate', 'up', 'down']) expected.push(`model.layers.${i}.mlp.${p}_proj.weight`);
    expected.push(`model.layers.${i}.input_layernorm.weight`, `model.layers.${i}.post_attention_layernorm.weight`);
  }
  expected.push('model.norm.weight', 'lm_head.weight');
  assert.deepEqual(m.namedParameters().map(([n]) => n).sort(), expected.sort());
  const shapes = Object.fromEntries(m.namedParameters().map(([n, p]) => [n, p.shape]));
  assert.deepEqual(shapes['model.layers.0.self_attn.k_proj.weight'], [8, 16]); // 2 kv heads x 4
  assert.deepEqual(shapes['model.layers.1.mlp.down_proj.weight'], [16, 24]);
  assert.deepEqual(shapes['lm_head.weight'], [20, 16]);
  for (const [path, mod] of m.namedModules()) {
    if (/_proj$/.test(path)) assert.ok(mod instanceof Linear, `${path} is a Linear`);
  }
  m.dispose();
});

test('qwen2 has q/k/v biases only', () => {
  const m = createRandomModel(makeConfig({ ...small, modelType: 'qwen2' }), 1);
  const biases = m.namedParameters().map(([n]) => n).filter((n) => n.endsWith('.bias') && n.includes('layers.0.'));
  assert.deepEqual(biases.sort(), ['k_proj', 'q_proj', 'v_proj'].map((p) => `model.layers.0.self_attn.${p}.bias`));
  m.dispose();
});

test('tied embeddings: one shared tensor, listed and disposed once, replaceParam seen by lm_head', () => {
  const before = tf.memory().numTensors;
  const m = createRandomModel(makeConfig({ ...small, tieWordEmbeddings: true }), 1);
  const names = m.namedParameters().map(([n]) => n);
  assert.ok(!names.includes('lm_head.weight'));
  assert.equal(tf.memory().numTensors - before, names.length, 'one tensor per listed parameter');
  const emb = m.getModule('model.embed_tokens');
  const head = m.getModule('lm_head') as unknown as { weight: tf.Tensor };
  assert.equal(head.weight, emb.param('weight'));
  const v = tf.variable(emb.param('weight'), true);
  const old = emb.replaceParam('weight', v);
  assert.equal(head.weight, v);
  old.dispose();
  assert.equal(m.trainableParameters().length, 1);
  assert.equal(m.numParameters(), 20 * 16 + 2 * (16 * 16 + 8 * 16 * 2 + 16 * 16 + 3 * 16 * 24 + 32) + 16);
  m.dispose();
  assert.equal(tf.memory().numTensors, before);
});

/** A LinearLike wrapper recording the ctx it receives. */
class Spy extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  seen: (ForwardContext | undefined)[] = [];
  constructor(readonly inner: LinearLike) {
    super();
    this.inFeatures = inner.inFeatures;
    this.outFeatures = inner.outFeatures;
    this.addChild('base_layer', inner);
  }
  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    this.seen.push(ctx);
    return this.inner.forward(x, ctx);
  }
}

test('every projection receives ctx (with tokenMask from the attention mask) and can be replaced', () => {
  const m = createRandomModel(makeConfig({ ...small, initializerRange: 0.2 }), 3);
  const spies: Spy[] = [];
  for (const [path, mod] of m.namedModules()) {
    if (!(mod instanceof Linear)) continue;
    const dot = path.lastIndexOf('.');
    const parent = dot < 0 ? m : m.getModule(path.slice(0, dot));
    const spy = new Spy(mod);
    parent.replaceChild(path.slice(dot + 1), spy);
    spies.push(spy);
  }
  assert.equal(spies.length, 2 * 7 + 1);
  const ctx: ForwardContext = { training: false, auxLosses: [] };
  const ids = tf.tensor2d([[0, 3, 4], [5, 6, 7]], undefined, 'int32');
  const am = tf.tensor2d([[0, 1, 1], [1, 1, 1]], undefined, 'int32');
  const out = m.forward(ids, { attentionMask: am, ctx });
  for (const s of spies) {
    assert.equal(s.seen.length, 1);
    assert.equal(s.seen[0]!.auxLosses, ctx.auxLosses, 'same auxLosses array');
    assert.deepEqual(Array.from(s.seen[0]!.tokenMask!.shape), [6]);
  }
  assert.equal(ctx.tokenMask, undefined, "caller's ctx not mutated");
  tf.dispose([ids, am, out]);
  m.dispose();
});

test('aux losses pushed by a layer during forward survive it', () => {
  const m = createRandomModel(makeConfig(small), 3);
  class Aux extends Spy {
    override forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
      ctx?.auxLosses.push(tf.keep(tf.scalar(0.5))); // adapters keep their aux losses (inner tidies)
      return super.forward(x, ctx);
    }
  }
  const mlp = m.getModule('model.layers.0.mlp');
  mlp.replaceChild('up_proj', new Aux(mlp.child('up_proj') as Linear));
  const ctx: ForwardContext = { training: true, auxLosses: [] };
  const ids = tf.tensor2d([[1, 2]], undefined, 'int32');
  const out = m.loss(ids, ids, { ctx });
  assert.equal(ctx.auxLosses.length, 1);
  assert.equal(ctx.auxLosses[0].dataSync()[0], 0.5);
  tf.dispose([out, ids, ...ctx.auxLosses]);
  m.dispose();
});

/** Naive HF-shifted cross-entropy from host logits. */
function naiveLoss(logits: Float32Array, labels: number[][], v: number): { sum: number; n: number } {
  let sum = 0;
  let n = 0;
  const t = labels[0].length;
  labels.forEach((row, b) => {
    for (let i = 0; i + 1 < t; i++) {
      const y = row[i + 1];
      if (y === -100) continue;
      const off = (b * t + i) * v;
      let mx = -Infinity;
      for (let k = 0; k < v; k++) mx = Math.max(mx, logits[off + k]);
      let z = 0;
      for (let k = 0; k < v; k++) z += Math.exp(logits[off + k] - mx);
      sum += Math.log(z) + mx - logits[off + y];
      n++;
    }
  });
  return { sum, n };
}

test('loss: HF shift, -100 ignored, mean over counted tokens; sum reduction; padding-predicted labels ignored', () => {
  const m = createRandomModel(makeConfig({ ...small, initializerRange: 0.3 }), 5);
  const ids = tf.tensor2d([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]], undefined, 'int32');
  const labels = [[-100, 2, -100, 4, 5], [6, -100, 8, 9, -100]];
  const lab = tf.tensor2d(labels, undefined, 'int32');
  const logits = m.forward(ids);
  const { sum, n } = naiveLoss(logits.dataSync() as Float32Array, labels, 20);
  assert.equal(n, 5);
  const mean = m.loss(ids, lab);
  assert.ok(Math.abs(mean.dataSync()[0] - sum / n) < 1e-5, `mean ${mean.dataSync()[0]} vs ${sum / n}`);
  const total = m.loss(ids, lab, { reduction: 'sum' });
  assert.ok(Math.abs(total.dataSync()[0] - sum) < 1e-4, `sum ${total.dataSync()[0]} vs ${sum}`);
  // With a mask [0,1,...] on row 0, label 2 at t=1 is predicted from the padding at t=0.
  const am = tf.tensor2d([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], undefined, 'int32');
  const masked = m.loss(ids, lab, { attentionMask: am });
  const lm = m.forward(ids, { attentionMask: am });
  const ref = naiveLoss(lm.dataSync() as Float32Array, [[-100, -100, -100, 4, 5], labels[1]], 20);
  assert.ok(Math.abs(masked.dataSync()[0] - ref.sum / ref.n) < 1e-5, `masked ${masked.dataSync()[0]} vs ${ref.sum / ref.n}`);
  const none = m.loss(ids, tf.fill([2, 5], -100, 'int32') as tf.Tensor2D);
  assert.equal(none.dataSync()[0], 0, 'no counted token: 0, not NaN');
  tf.dispose([ids, lab, logits, mean, total, am, masked, lm, none]);
  m.dispose();
});

test('loss on few labelled positions (head on those rows only) equals the full-logits loss, value and gradients', () => {
  for (const tied of [true, false]) {
    const m = createRandomModel(makeConfig({ ...small, initializerRange: 0.3, tieWordEmbeddings: tied }), 6);
    // 3 of 24 positions counted (<= 1/4: the label-position path); row 1 is left-padded.
    const ids = tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [3, 3, 3, 6, 7, 8, 9, 1, 2, 4, 5, 6]], undefined, 'int32');
    const labels = [
      [-100, -100, -100, -100, -100, -100, -100, -100, -100, 10, 11, -100],
      [-100, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100, 6],
    ];
    const lab = tf.tensor2d(labels, undefined, 'int32');
    const am = tf.tensor2d([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]], undefined, 'int32');
    const logits = m.forward(ids, { attentionMask: am });
    const ref = naiveLoss(logits.dataSync() as Float32Array, labels, 20);
    assert.equal(ref.n, 3);
    const mean = m.loss(ids, lab, { attentionMask: am });
    const total = m.loss(ids, lab, { attentionMask: am, reduction: 'sum' });
    assert.ok(Math.abs(mean.dataSync()[0] - ref.sum / ref.n) < 1e-5, `mean ${mean.dataSync()[0]} vs ${ref.sum / ref.n}`);
    assert.ok(Math.abs(total.dataSync()[0] - ref.sum) < 1e-4, `sum ${total.dataSync()[0]} vs ${ref.sum}`);
    // Gradients w.r.t. a layer weight and the (tied or input) embedding vs the full-logits loss.
    const vs = ['model.layers.0.mlp.up_proj', 'model.embed_tokens'].map((name) => {
      const mod = m.getModule(name);
      const v = tf.variable(mod.param('weight'), true);
      mod.replaceParam('weight', v).dispose();
      return v;
    });
    const full = () => tf.tidy(() => {
      const lg = m.forward(ids, { attentionMask: am });
      return causalLmLoss(lg, maskUnpredictable(lab, am));
    });
    const fast = tf.variableGrads(() => m.loss(ids, lab, { attentionMask: am }), vs);
    const slow = tf.variableGrads(full, vs);
    assert.ok(Math.abs(fast.value.dataSync()[0] - slow.value.dataSync()[0]) < 1e-6);
    for (const v of vs) {
      const a = fast.grads[v.name].dataSync();
      const b = slow.grads[v.name].dataSync();
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < a.length; i++) { diff = Math.max(diff, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
      assert.ok(scale > 0 && diff <= 1e-5 * scale, `${v.name} (tied ${tied}): max |diff| ${diff}, max |grad| ${scale}`);
    }
    tf.dispose([ids, lab, am, logits, mean, total, fast.value, slow.value, ...Object.values(fast.grads), ...Object.values(slow.grads)]);
    m.dispose();
  }
});

test('labelledPositions: predicting rows and targets after the shift', () => {
  const p = labelledPositions([-100, 5, -100, 7, /* row 1 */ 9, -100, 4, -100], 2, 4);
  assert.deepEqual(Array.from(p.rows), [0, 2, 5]);
  assert.deepEqual(Array.from(p.targets), [5, 7, 4]);
});

/** Central finite differences of `m.loss(ids, ids)` w.r.t. entries `ks` of `v`, vs autodiff. */
function assertGradMatchesFiniteDiff(m: LlamaForCausalLM, ids: tf.Tensor2D, v: tf.Variable, ks: number[]): void {
  const { grads, value } = tf.variableGrads(() => m.loss(ids, ids), [v]);
  const g = grads[v.name].dataSync();
  const base = v.dataSync().slice();
  const eps = 1e-2;
  for (const k of ks) {
    const at = (d: number) => {
      const w = base.slice();
      w[k] += d;
      v.assign(tf.tensor(w, v.shape));
      const l = m.loss(ids, ids);
      const r = l.dataSync()[0];
      l.dispose();
      return r;
    };
    const fd = (at(eps) - at(-eps)) / (2 * eps);
    assert.ok(Math.abs(fd - g[k]) < 2e-3 + 0.02 * Math.abs(fd), `grad[${k}] ${g[k]} vs fd ${fd}`);
  }
  tf.dispose([value, ...Object.values(grads)]);
}

test('loss gradient w.r.t. a weight matches finite differences', () => {
  const m = createRandomModel(makeConfig({ ...small, initializerRange: 0.3 }), 9);
  const attn = m.getModule('model.layers.1.self_attn.q_proj');
  const w0 = attn.param('weight');
  const v = tf.variable(w0, true);
  attn.replaceParam('weight', v);
  w0.dispose();
  const ids = tf.tensor2d([[1, 5, 9, 2, 7]], undefined, 'int32');
  assertGradMatchesFiniteDiff(m, ids, v, [3, 77, 200]);
  ids.dispose();
  m.dispose();
});

test('embedding gradient (trainable embed_tokens, repeated ids) matches finite differences', () => {
  const m = createRandomModel(makeConfig({ ...small, initializerRange: 0.3, tieWordEmbeddings: true }), 4);
  const emb = m.getModule('model.embed_tokens');
  const v = tf.variable(emb.param('weight'), true);
  emb.replaceParam('weight', v).dispose();
  const ids = tf.tensor2d([[1, 5, 1, 2, 5]], undefined, 'int32');
  // rows of ids 1 and 5 (repeated), 11 (lm_head only)
  assertGradMatchesFiniteDiff(m, ids, v, [1 * 16 + 3, 5 * 16 + 7, 11 * 16]);
  ids.dispose();
  m.dispose();
});

test('createRandomModel: deterministic per seed, HF-like init (normal std, norms 1, biases 0, pad row 0)', () => {
  const cfg = makeConfig({ ...small, modelType: 'qwen2', initializerRange: 0.05, padTokenId: 3 });
  const a = createRandomModel(cfg, 11);
  const b = createRandomModel(cfg, 11);
  const c = createRandomModel(cfg, 12);
  const pa = new Map(a.namedParameters());
  const q = pa.get('model.layers.0.self_attn.q_proj.weight')!.dataSync() as Float32Array;
  assert.deepEqual(q, new Map(b.namedParameters()).get('model.layers.0.self_attn.q_proj.weight')!.dataSync());
  assert.notDeepEqual(q, new Map(c.namedParameters()).get('model.layers.0.self_attn.q_proj.weight')!.dataSync());
  const mean = q.reduce((s, x) => s + x, 0) / q.length;
  const std = Math.sqrt(q.reduce((s, x) => s + (x - mean) ** 2, 0) / q.length);
  assert.ok(Math.abs(std - 0.05) < 0.01, `std ${std}`);
  assert.ok(pa.get('model.norm.weight')!.dataSync().every((x) => x === 1));
  assert.ok(pa.get('model.layers.0.self_attn.q_proj.bias')!.dataSync().every((x) => x === 0));
  const emb = pa.get('model.embed_tokens.weight')!.dataSync();
  assert.ok(emb.slice(3 * 16, 4 * 16).every((x) => x === 0));
  assert.ok(emb.slice(2 * 16, 3 * 16).some((x) => x !== 0));
  [a, b, c].forEach((m) => m.dispose());
});
