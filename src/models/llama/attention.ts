/**
 * Multi-head self-attention with grouped-query attention (GQA) and rotary embeddings
 * (`LlamaAttention`). The query heads that share a key/value head are folded into one
 * per-slice matmul: scores are `[B, Hkv, nRep * T, S]`, so K and V are never repeated.
 */
import { tf } from '../../backend/tf.ts';
import { matMul } from '../../backend/matmul.ts';
import { Module } from '../../nn/module.ts';
import type { LinearLike } from '../../nn/linear.ts';
import type { ForwardContext } from '../../nn/context.ts';
import type { LlamaConfig } from './config.ts';
import type { KVCache } from './kvCache.ts';
import { applyRope } from './rope.ts';
import { fusedAttention } from './fusedAttention.ts';
import { nativeAttentionActive } from '../../backend/attentionKernels.ts';
import { buildLinear, type WeightSource } from './weights.ts';

/** Per-forward inputs shared by every layer. */
export interface AttentionInputs {
  /** Rotary tables `[B, T, 1, headDim]`. */
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  /** Additive mask `[B, 1, 1, T, S]` (0 or a large negative), or none when all keys are visible. */
  mask?: tf.Tensor;
  ctx?: ForwardContext;
  cache?: KVCache;
}

export class LlamaAttention extends Module {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;

  constructor(config: LlamaConfig, readonly layerIdx: number, prefix: string, get: WeightSource) {
    super();
    const { hiddenSize: c, numAttentionHeads: h, numKeyValueHeads: hkv, headDim: d } = config;
    this.numHeads = h;
    this.numKvHeads = hkv;
    this.headDim = d;
    this.addChild('q_proj', buildLinear(get, `${prefix}.q_proj`, h * d, c, config.qkvBias));
    this.addChild('k_proj', buildLinear(get, `${prefix}.k_proj`, hkv * d, c, config.qkvBias));
    this.addChild('v_proj', buildLinear(get, `${prefix}.v_proj`, hkv * d, c, config.qkvBias));
    this.addChild('o_proj', buildLinear(get, `${prefix}.o_proj`, c, h * d, config.oBias));
  }

  get qProj(): LinearLike { return this.child<LinearLike>('q_proj'); }
  get kProj(): LinearLike { return this.child<LinearLike>('k_proj'); }
  get vProj(): LinearLike { return this.child<LinearLike>('v_proj'); }
  get oProj(): LinearLike { return this.child<LinearLike>('o_proj'); }

  /** x `[B, T, hidden]` -> `[B, T, hidden]`. */
  forward(x: tf.Tensor3D, inp: AttentionInputs): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, t] = x.shape;
      const h = this.numHeads;
      const hkv = this.numKvHeads;
      const d = this.headDim;
      const rep = h / hkv;
      const q = this.qProj.forward(x, inp.ctx).reshape([b, t, h, d]) as tf.Tensor4D; // [B, T, H, D]
      const k = this.kProj.forward(x, inp.ctx).reshape([b, t, hkv, d]) as tf.Tensor4D; // [B, T, Hkv, D]
      const v = this.vProj.forward(x, inp.ctx).reshape([b, t, hkv, d]) as tf.Tensor4D;
      const qr = applyRope(q, inp.cos, inp.sin, 1 / Math.sqrt(d)); // scale folded into q, [B, T, H, D]
      if (nativeAttentionActive()) {
        // One fused op in the projections' layout: no transposes, no saved [T, S] scores; a KV
        // cache holds keys and values in that layout too ([B, S, Hkv, D]).
        let kr = applyRope(k, inp.cos, inp.sin);
        let vr = v;
        if (inp.cache) ({ k: kr, v: vr } = inp.cache.updateTokens(this.layerIdx, kr, v));
        const mask = inp.mask?.reshape([inp.mask.shape[0], t, inp.mask.shape[inp.mask.rank - 1]]) as tf.Tensor3D | undefined;
        return this.oProj.forward(fusedAttention(qr, kr, vr, mask).reshape([b, t, h * d]), inp.ctx) as tf.Tensor3D;
      }
      let kh = applyRope(k, inp.cos, inp.sin).transpose([0, 2, 1, 3]) as tf.Tensor4D; // [B, Hkv, T, D]
      let vh = v.transpose([0, 2, 1, 3]) as tf.Tensor4D; // [B, Hkv, T, D]
      if (inp.cache) ({ k: kh, v: vh } = inp.cache.update(this.layerIdx, kh, vh));
      const s = kh.shape[2];
      // Query head j*rep + r uses kv head j (HF repeat_kv order).
      const qg = qr.reshape([b, t, hkv, rep, d]).transpose([0, 2, 3, 1, 4]).reshape([b, hkv, rep * t, d]); // [B, Hkv, rep*T, D]
      let scores = matMul(qg, kh, false, true); // [B, Hkv, rep*T, S]
      if (inp.mask) scores = tf.add(scores.reshape([b, hkv, rep, t, s]), inp.mask).reshape([b, hkv, rep * t, s]);
      const probs = tf.softmax(scores, -1);
      const out = matMul(probs, vh) // [B, Hkv, rep*T, D]
        .reshape([b, hkv, rep, t, d])
        .transpose([0, 3, 1, 2, 4]) // [B, T, Hkv, rep, D]
        .reshape([b, t, h * d]);
      return this.oProj.forward(out, inp.ctx) as tf.Tensor3D;
    });
  }
}
