/**
 * The native fused attention against attention written out per head in tfjs ops (autodiff for
 * the gradients of q, k and v): grouped-query heads, no mask, a causal mask shared by the batch,
 * a per-row padding mask with fully masked query rows, more keys than queries, and more query
 * rows than one tile (256). On a machine without the addon the op is not used (asserted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { nativeAttentionActive } from '../../src/backend/attentionKernels.ts';
import { fusedAttention } from '../../src/models/llama/fusedAttention.ts';
import { MASK_VALUE } from '../../src/models/llama/mask.ts';
import { Rng } from '../../src/util/rng.ts';

const info = await initBackend({ announce: false });

function rand(rng: Rng, shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => scale * (2 * rng.next() - 1)), shape);
}

/** Per head: softmax(q_h k_gᵀ + mask) v_g, stacked back to [B, T, H, D]. */
function reference(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask?: tf.Tensor3D): tf.Tensor4D {
  const [, , h, d] = q.shape;
  const hkv = k.shape[2];
  const heads: tf.Tensor[] = [];
  for (let i = 0; i < h; i++) {
    const g = Math.floor(i / (h / hkv));
    const qh = q.slice([0, 0, i, 0], [-1, -1, 1, d]).squeeze([2]); // [B, T, D]
    const kg = k.slice([0, 0, g, 0], [-1, -1, 1, d]).squeeze([2]); // [B, S, D]
    const vg = v.slice([0, 0, g, 0], [-1, -1, 1, d]).squeeze([2]);
    let s = tf.matMul(qh, kg, false, true); // [B, T, S]
    if (mask) s = tf.add(s, mask);
    heads.push(tf.matMul(tf.softmax(s, -1), vg)); // [B, T, D]
  }
  return tf.stack(heads, 2) as tf.Tensor4D;
}

interface Case { name: string; b: number; t: number; s: number; h: number; hkv: number; d: number; mask?: 'causal' | 'padded' }

function makeMask(c: Case): tf.Tensor3D | undefined {
  if (!c.mask) return undefined;
  const past = c.s - c.t;
  const rows = c.mask === 'causal' ? 1 : c.b;
  const m = new Float32Array(rows * c.t * c.s);
  for (let r = 0; r < rows; r++) {
    const pads = c.mask === 'padded' ? r * 3 : 0; // row r: its first 3r keys are padding
    for (let i = 0; i < c.t; i++) for (let j = 0; j < c.s; j++) if (j > past + i || j < pads) m[(r * c.t + i) * c.s + j] = MASK_VALUE;
  }
  return tf.tensor3d(m, [rows, c.t, c.s]);
}

const CASES: Case[] = [
  { name: 'GQA, no mask', b: 2, t: 5, s: 5, h: 6, hkv: 2, d: 8 },
  { name: 'causal mask shared by the batch, more keys than queries', b: 2, t: 4, s: 9, h: 4, hkv: 4, d: 16, mask: 'causal' },
  { name: 'padding mask per row, fully masked query rows', b: 3, t: 7, s: 7, h: 6, hkv: 3, d: 8, mask: 'padded' },
  { name: 'more query rows than one tile', b: 1, t: 1100, s: 1100, h: 2, hkv: 1, d: 8, mask: 'causal' },
  // Large enough (B*H*T*S*D >= 2^22) that the (batch, kv-head) groups split over the threads.
  { name: 'groups split over threads, padding mask per row', b: 2, t: 300, s: 300, h: 6, hkv: 3, d: 16, mask: 'padded' },
  { name: 'groups split over threads, causal GQA, more keys than queries', b: 3, t: 160, s: 200, h: 4, hkv: 2, d: 32, mask: 'causal' },
];

test('fused attention is the native path exactly when BLAS is active', () => {
  assert.equal(nativeAttentionActive(), info.matmulPath === 'wasm+blas');
});

for (const c of CASES) {
  test(`fused attention equals per-head attention in value and q/k/v gradients: ${c.name}`, () => {
    if (!nativeAttentionActive()) {
      assert.equal(info.matmulPath, 'wasm'); // the model uses the op attention here
      return;
    }
    const rng = new Rng(c.t * 31 + c.h);
    const q = rand(rng, [c.b, c.t, c.h, c.d], 0.8) as tf.Tensor4D;
    const k = rand(rng, [c.b, c.s, c.hkv, c.d], 0.8) as tf.Tensor4D;
    const v = rand(rng, [c.b, c.s, c.hkv, c.d]) as tf.Tensor4D;
    const w = rand(rng, [c.b, c.t, c.h, c.d]); // a fixed upstream gradient
    const mask = makeMask(c);
    const before = tf.memory().numTensors;
    const grads = (f: typeof fusedAttention) => tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor, e: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D, e as tf.Tensor4D, mask), w)) as tf.Scalar)([q, k, v]);
    const ours = grads(fusedAttention);
    const ref = grads(reference);
    const outOurs = fusedAttention(q, k, v, mask);
    const outRef = tf.tidy(() => reference(q, k, v, mask));
    const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
    assert.ok(diff(outOurs, outRef) < 2e-6, `output differs by ${diff(outOurs, outRef)}`);
    ours.grads.forEach((g, i) => assert.ok(diff(g, ref.grads[i]) < 1e-5, `gradient of ${'qkv'[i]} differs by ${diff(g, ref.grads[i])}`));
    tf.dispose([ours.value, ...ours.grads, ref.value, ...ref.grads, outOurs, outRef]);
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    tf.dispose([q, k, v, w, ...(mask ? [mask] : [])]);
  });
}
