/**
 * Shared math of the low-rank adapters: initialisation, dropout, the low-rank product, and
 * the routing helpers (softmax router, top-k, load-balance loss, routing observation) used by
 * MoR and MoELoRA. All randomness comes from {@link Rng} streams derived from a seed and the
 * layer's module path, so runs are deterministic.
 */
import { tf } from '../backend/tf.ts';
import { matMul } from '../backend/matmul.ts';
import { Rng } from '../util/rng.ts';
import type { ForwardContext } from '../nn/context.ts';

/** 32-bit FNV-1a hash of a string (to derive per-layer seeds from module paths). */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A deterministic stream for (seed, key): independent per layer and adapter. */
export function derivedRng(seed: number, key: string): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ hashString(key)) >>> 0);
}

/**
 * PEFT/PyTorch `kaiming_uniform_(w, a=sqrt(5))` for a `[rows, cols]` weight (fan_in = cols):
 * bound = gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)), i.e. `1 / sqrt(cols)`.
 */
export function kaimingUniform(rng: Rng, rows: number, cols: number): Float32Array {
  const bound = 1 / Math.sqrt(cols);
  return rng.uniformArray(rows * cols, -bound, bound);
}

/** Initial A `[r, dIn]` and B `[dOut, r]` for a LoRA init mode (see `init` in config.ts). */
export function initLowRankPair(
  init: 'default' | 'gaussian' | false,
  rng: Rng,
  r: number,
  dIn: number,
  dOut: number,
): { a: Float32Array; b: Float32Array } {
  const a = init === 'gaussian' ? rng.normalArray(r * dIn, 0, 1 / r) : kaimingUniform(rng, r, dIn);
  // init=false: B as a fresh nn.Linear(r, dOut) would be (PEFT debugging mode), not zeros.
  const b = init === false ? kaimingUniform(rng, dOut, r) : new Float32Array(dOut * r);
  return { a, b };
}

/** A trainable variable from host data. */
export function variable(data: Float32Array, shape: number[], trainable = true): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), trainable));
}

/**
 * A copy of `t` cut from the gradient graph (PyTorch `.detach()`): tfjs has no stop-gradient
 * op, and a copy made on the host is on no path from a variable, so backprop skips it entirely.
 * Only for small tensors (norms, router decisions).
 */
export function detach<T extends tf.Tensor>(t: T): T {
  return tf.tensor(t.dataSync() as Float32Array, t.shape, t.dtype) as T;
}

/** `[..., d]` -> `[tokens, d]`. */
export function flatten2d(x: tf.Tensor): tf.Tensor2D {
  const d = x.shape[x.rank - 1];
  return x.reshape([x.size / d, d]) as tf.Tensor2D;
}

/**
 * Inverted dropout on the adapter input (only when `ctx.training` and p > 0). The mask comes
 * from `ctx.seed` mixed with `key` (module path + adapter) when the context has a seed, so a
 * step is reproducible; otherwise from the layer's own stream `fallback`.
 */
export function dropout(x: tf.Tensor2D, p: number, ctx: ForwardContext | undefined, key: string, fallback: Rng): tf.Tensor2D {
  if (!ctx?.training || p <= 0) return x;
  const rng = ctx.seed !== undefined ? derivedRng(ctx.seed, key) : fallback;
  if (rng === fallback && ctx.dropoutStreams && !ctx.dropoutStreams.has(rng)) ctx.dropoutStreams.set(rng, rng.getState());
  const keep = 1 - p;
  const n = x.size;
  const mask = new Float32Array(n);
  const scale = 1 / keep;
  for (let i = 0; i < n; i++) mask[i] = rng.next() < keep ? scale : 0;
  return tf.mul(x, tf.tensor(mask, x.shape, 'float32'));
}

/** Router probabilities `softmax(x W_g^T + b)`: x `[T, dIn]`, W_g `[N, dIn]` -> `[T, N]`. */
export function routerProbs(x: tf.Tensor2D, wg: tf.Tensor, bias?: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => routerSoftmax(matMul(x, wg, false, true) as tf.Tensor2D, bias));
}

/**
 * `x Aᵀ` `[T, r]` and the router logits `x W_gᵀ` `[T, N]` from ONE product `x [A; W_g]ᵀ`: when
 * there is no dropout the adapter and its router read the same input, and one product means one
 * dx product and one fewer gradient sum in the backward.
 */
export function projectWithRouter(x: tf.Tensor2D, a: tf.Tensor, wg: tf.Tensor): { h: tf.Tensor2D; logits: tf.Tensor2D } {
  const r = a.shape[0];
  const both = matMul(x, tf.concat([a, wg], 0), false, true) as tf.Tensor2D; // [T, r+N]
  return { h: both.slice([0, 0], [-1, r]), logits: both.slice([0, r], [-1, -1]) };
}

/** `softmax(logits + b)` for router logits `x W_g^T` `[T, N]` computed elsewhere. */
export function routerSoftmax(logits: tf.Tensor2D, bias?: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => tf.softmax(bias ? tf.add(logits, bias) : logits) as tf.Tensor2D);
}

/**
 * Keep the top-k probabilities of each row and renormalise them to sum to 1. Returns the
 * gated weights (differentiable through the kept entries) and the 0/1 selection mask.
 */
export function topKRenormalize(g: tf.Tensor2D, k: number): { weights: tf.Tensor2D; selected: tf.Tensor2D } {
  return tf.tidy(() => {
    const n = g.shape[1];
    const { indices } = tf.topk(detach(g), k); // [T, k], no gradient through the choice
    const selected = tf.oneHot(indices, n).sum(1).toFloat() as tf.Tensor2D; // [T, N]
    const kept = tf.mul(g, selected);
    return { weights: tf.div(kept, kept.sum(1, true)) as tf.Tensor2D, selected };
  });
}

/** Top-1 assignment `[T, N]` (0/1) of the router, for the load-balance statistics. */
export function argmaxAssignment(g: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.oneHot(tf.argMax(detach(g), 1), g.shape[1]).toFloat() as tf.Tensor2D);
}

/**
 * Switch/Mixtral load-balance loss `N * sum_i f_i P_i` over the real tokens: `f_i` the fraction
 * of token assignments going to expert i (`assigned` rows normalised to sum 1, so a k-expert
 * assignment counts 1/k each; not differentiable), `P_i` the mean router probability of
 * expert i (differentiable). Equals 1 for perfectly balanced routing. `mask` `[T]` (1 = real).
 */
export function loadBalanceLoss(probs: tf.Tensor2D, assigned: tf.Tensor2D, mask?: tf.Tensor1D): tf.Scalar {
  checkMask(mask, probs.shape[0]);
  return tf.tidy(() => {
    const n = probs.shape[1];
    const a = tf.div(assigned, assigned.sum(1, true)); // not differentiable (a decision)
    let f: tf.Tensor;
    let p: tf.Tensor;
    if (mask) {
      const m = mask.reshape([-1, 1]);
      const count = tf.maximum(mask.sum(), 1);
      f = tf.div(tf.mul(a, m).sum(0), count); // [N]
      p = tf.div(tf.mul(probs, m).sum(0), count);
    } else {
      f = a.mean(0);
      p = probs.mean(0);
    }
    return tf.mul(tf.sum(tf.mul(f, p)), n) as tf.Scalar;
  });
}

/** Push a (coefficient-scaled) aux loss to the context; it survives the caller's tidy. */
export function pushAuxLoss(ctx: ForwardContext | undefined, loss: tf.Scalar, coef: number): void {
  if (!ctx || coef === 0) return;
  ctx.auxLosses.push(tf.keep(tf.mul(loss, coef) as tf.Scalar));
}

/** Report the routing weights of the real tokens to `ctx.routing` (if any). */
export function recordRouting(ctx: ForwardContext | undefined, modulePath: string, g: tf.Tensor2D): void {
  if (!ctx?.routing) return;
  checkMask(ctx.tokenMask, g.shape[0]);
  const weights = tf.tidy(() => {
    if (!ctx.tokenMask) return g;
    const m = ctx.tokenMask.dataSync();
    const idx: number[] = [];
    for (let i = 0; i < m.length; i++) if (m[i] > 0) idx.push(i);
    if (idx.length === m.length) return g;
    return tf.gather(g, tf.tensor1d(idx, 'int32')) as tf.Tensor2D;
  });
  try {
    ctx.routing.record(modulePath, weights);
  } finally {
    if (weights !== g) weights.dispose();
  }
}

/** `ctx.tokenMask` must have one entry per token of the layer input. */
function checkMask(mask: tf.Tensor1D | undefined, tokens: number): void {
  if (mask && mask.size !== tokens) {
    throw new Error(`ctx.tokenMask has ${mask.size} entries but the layer input has ${tokens} tokens`);
  }
}
