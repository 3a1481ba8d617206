/**
 * Router maths shared by the routed adapter kinds: the softmax router (alone, or sharing one
 * product with the adapter's A), top-k renormalisation, the Switch/Mixtral load-balance loss,
 * and the report of each layer's routing weights to the forward context's observer
 * (`RoutingStats` in stats.ts). Shapes: T tokens, N experts.
 */
import { tf } from '../backend/tf.ts';
import { UserError } from '../errors.ts';
import { matMul } from '../backend/matmul.ts';
import type { ForwardContext } from '../nn/context.ts';
import { detach } from '../adapters/lowRank.ts';

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

/** Validate a routing vector: length N, finite. */
export function checkRouting(g: ArrayLike<number>, n: number, where: string): Float32Array {
  if (g.length !== n) throw new UserError(`${where}: routing vector has ${g.length} entries, expected ${n} (numExperts)`);
  const out = Float32Array.from(g as ArrayLike<number>);
  if (!out.every(Number.isFinite)) throw new UserError(`${where}: routing vector has non-finite entries`);
  return out;
}
