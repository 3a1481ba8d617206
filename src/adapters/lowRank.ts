/**
 * Shared math of the low-rank adapters: initialisation, dropout, detaching, flattening. The
 * router maths of the routed kinds lives in routing/router.ts. All randomness comes from
 * {@link Rng} streams derived from a seed and the layer's module path, so runs are
 * deterministic.
 */
import { tf } from '../backend/tf.ts';
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
 * A softmax router of `n` experts on `dIn` inputs: weight `[n, dIn]` ~ N(0, std) drawn from `rng`,
 * and a zero bias `[n]` when `bias`; registered in `tensors` as `<prefix>_router.weight` / `.bias`
 * (the key layout every routed kind shares).
 */
export function routerVariables(
  rng: Rng, n: number, dIn: number, o: { routerInitStd: number; routerBias: boolean }, prefix: string, tensors: Map<string, tf.Variable>,
): { router: tf.Variable; routerBias?: tf.Variable } {
  const router = variable(rng.normalArray(n * dIn, 0, o.routerInitStd), [n, dIn]);
  tensors.set(`${prefix}_router.weight`, router);
  if (!o.routerBias) return { router };
  const routerBias = variable(new Float32Array(n), [n]);
  tensors.set(`${prefix}_router.bias`, routerBias);
  return { router, routerBias };
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
