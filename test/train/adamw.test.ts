import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { AdamW, defaultNoDecay } from '../../src/train/adamw.ts';
import { Rng } from '../../src/util/rng.ts';

await initBackend({ announce: false });

/** PyTorch's AdamW (torch/optim/adamw.py, single-tensor path), naively, in float64. */
function referenceAdamW(
  p0: number[], grads: number[][], lrs: number[],
  o: { beta1: number; beta2: number; eps: number; wd: number },
): number[] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  grads.forEach((g, k) => {
    const t = k + 1;
    const lr = lrs[k];
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - lr * o.wd;
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i];
      const bc1 = 1 - o.beta1 ** t;
      const bc2 = 1 - o.beta2 ** t;
      const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + o.eps;
      p[i] -= (lr / bc1) * (m[i] / denom);
    }
  });
  return p;
}

function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]) / Math.max(1e-3, Math.abs(b[i])));
  return e;
}

test('AdamW matches a float64 reference of PyTorch AdamW, with and without decay', () => {
  const rng = new Rng(3);
  const before = tf.memory().numTensors;
  const w0 = Array.from(rng.normalArray(12));
  const b0 = Array.from(rng.normalArray(3));
  const w = tf.tidy(() => tf.variable(tf.tensor2d(Float32Array.from(w0), [3, 4]), true, 'adamw_test_w'));
  const b = tf.tidy(() => tf.variable(tf.tensor1d(Float32Array.from(b0)), true, 'adamw_test_b'));
  const o = { beta1: 0.8, beta2: 0.95, eps: 1e-6, wd: 0.1 };
  const opt = new AdamW([['layer.weight', w], ['layer.bias', b]], { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.wd });
  assert.deepEqual(opt.decayedNames(), ['layer.weight']);
  const gw: number[][] = [];
  const gb: number[][] = [];
  const lrs = [0.01, 0.02, 0.03, 0.015, 0.005, 0.001];
  for (const lr of lrs) {
    const g1 = Array.from(Float32Array.from(rng.normalArray(12)));
    const g2 = Array.from(Float32Array.from(rng.normalArray(3, 0, 10)));
    gw.push(g1);
    gb.push(g2);
    const grads = new Map<string, tf.Tensor>([['layer.weight', tf.tensor2d(g1, [3, 4])], ['layer.bias', tf.tensor1d(g2)]]);
    opt.update(grads, lr);
    for (const g of grads.values()) g.dispose();
  }
  const refW = referenceAdamW(Array.from(Float32Array.from(w0)), gw, lrs, o);
  const refB = referenceAdamW(Array.from(Float32Array.from(b0)), gb, lrs, { ...o, wd: 0 });
  assert.ok(maxRelErr(w.dataSync(), refW) < 1e-5, `weight err ${maxRelErr(w.dataSync(), refW)}`);
  assert.ok(maxRelErr(b.dataSync(), refB) < 1e-5, `bias err ${maxRelErr(b.dataSync(), refB)}`);
  assert.equal(opt.step, lrs.length);
  opt.dispose();
  w.dispose();
  b.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('AdamW state export/import continues bit-exactly', () => {
  const rng = new Rng(5);
  const init = rng.normalArray(8);
  const gs = Array.from({ length: 6 }, () => rng.normalArray(8));
  const run = (splitAt: number): Float32Array => {
    let p = tf.tidy(() => tf.variable(tf.tensor2d(init, [2, 4])));
    let opt = new AdamW([['x.weight', p]], { weightDecay: 0.05 });
    for (let k = 0; k < gs.length; k++) {
      if (k === splitAt) {
        const state = opt.exportState();
        const values = p.dataSync().slice();
        opt.dispose();
        p.dispose();
        p = tf.tidy(() => tf.variable(tf.tensor2d(values, [2, 4])));
        opt = new AdamW([['x.weight', p]], { weightDecay: 0.05 });
        opt.importState(state);
      }
      const g = tf.tensor2d(gs[k], [2, 4]);
      opt.update(new Map([['x.weight', g]]), 0.01);
      g.dispose();
    }
    const out = p.dataSync().slice() as Float32Array;
    opt.dispose();
    p.dispose();
    return out;
  };
  assert.deepEqual(run(3), run(-1));
});

test('AdamW rejects mismatched state and missing gradients', () => {
  const p = tf.tidy(() => tf.variable(tf.zeros([2, 2])));
  const opt = new AdamW([['a.weight', p]]);
  assert.throws(() => opt.update(new Map(), 0.1), /no gradient for "a.weight"/);
  const bad = { step: 1, m: new Map([['a.weight', { shape: [4], data: new Float32Array(4) }]]), v: new Map() };
  assert.throws(() => opt.importState(bad), /shape \[4\], expected \[2,2\]/);
  opt.dispose();
  p.dispose();
});

test('default no-decay rule: norms, biases, omegas, magnitudes, 1-D tensors', () => {
  assert.equal(defaultNoDecay('model.layers.0.input_layernorm.weight', [8, 8]), true);
  assert.equal(defaultNoDecay('model.layers.0.mlp.up_proj.bias', [8, 8]), true);
  assert.equal(defaultNoDecay('model.layers.0.mlp.up_proj.mor_omega_a', [4, 8]), true);
  assert.equal(defaultNoDecay('x.lora_magnitude_vector', [2, 8]), true);
  assert.equal(defaultNoDecay('x.router.weight', [8]), true);
  assert.equal(defaultNoDecay('model.layers.0.mlp.up_proj.lora_A.weight', [4, 8]), false);
});
