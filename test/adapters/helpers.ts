/**
 * Shared test helpers for the adapter tests: a small Module tree shaped like a LLaMA model
 * (`model.layers.{i}.self_attn.{q,k,v,o}_proj`, `model.layers.{i}.mlp.{gate,up,down}_proj`,
 * `lm_head`), random tensors, comparisons and central finite differences.
 */
import { tf } from '../../src/backend/tf.ts';
import { Module } from '../../src/nn/module.ts';
import { Linear, type LinearLike } from '../../src/nn/linear.ts';
import type { ForwardContext } from '../../src/nn/context.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxOf } from '../../src/util/array.ts';

export function randLinear(rng: Rng, out: number, inF: number, bias = false): Linear {
  const w = tf.tensor2d(rng.normalArray(out * inF, 0, 0.5), [out, inF]);
  const b = bias ? tf.tensor1d(rng.normalArray(out, 0, 0.5)) : undefined;
  return new Linear(w, b);
}

export function randTensor(rng: Rng, shape: number[], std = 1): tf.Tensor {
  return tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1), 0, std), shape, 'float32');
}

class ToyAttention extends Module {
  constructor(rng: Rng, d: number, bias: boolean) {
    super();
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) this.addChild(n, randLinear(rng, d, d, bias));
  }
  proj(n: string): LinearLike {
    return this.child<LinearLike>(n);
  }
}

class ToyMlp extends Module {
  constructor(rng: Rng, d: number, f: number) {
    super();
    this.addChild('gate_proj', randLinear(rng, f, d));
    this.addChild('up_proj', randLinear(rng, f, d));
    this.addChild('down_proj', randLinear(rng, d, f));
  }
  proj(n: string): LinearLike {
    return this.child<LinearLike>(n);
  }
}

class ToyBlock extends Module {
  constructor(rng: Rng, d: number, f: number, bias: boolean) {
    super();
    this.addChild('self_attn', new ToyAttention(rng, d, bias));
    this.addChild('mlp', new ToyMlp(rng, d, f));
    this.addChild('input_layernorm', new Norm(d));
  }
}

class Norm extends Module {
  constructor(d: number) {
    super();
    this.addParam('weight', tf.ones([d]));
  }
}

class ToyList extends Module {
  constructor(blocks: Module[]) {
    super();
    blocks.forEach((b, i) => this.addChild(String(i), b));
  }
}

class ToyInner extends Module {
  constructor(rng: Rng, d: number, f: number, n: number, bias: boolean) {
    super();
    this.addChild('layers', new ToyList(Array.from({ length: n }, () => new ToyBlock(rng, d, f, bias))));
    this.addChild('norm', new Norm(d));
  }
}

/** A LLaMA-shaped toy: hidden d, intermediate f, n layers, vocab v (lm_head). */
export class ToyModel extends Module {
  constructor(readonly d = 8, readonly f = 12, readonly n = 2, readonly v = 10, seed = 1, bias = false) {
    super();
    const rng = new Rng(seed);
    this.addChild('model', new ToyInner(rng, d, f, n, bias));
    this.addChild('lm_head', randLinear(rng, v, d));
  }

  /** x `[T, d]` -> `[T, v]`, using every linear layer. */
  forward(x: tf.Tensor2D, ctx?: ForwardContext): tf.Tensor2D {
    return tf.tidy(() => {
      let h: tf.Tensor = x;
      for (let i = 0; i < this.n; i++) {
        const blk = this.getModule(`model.layers.${i}`);
        const at = blk.child<ToyAttention>('self_attn');
        const qkv = tf.add(tf.add(at.proj('q_proj').forward(h, ctx), at.proj('k_proj').forward(h, ctx)), at.proj('v_proj').forward(h, ctx));
        h = tf.add(h, tf.mul(at.proj('o_proj').forward(tf.tanh(qkv), ctx), 0.5));
        const mlp = blk.child<ToyMlp>('mlp');
        const g = mlp.proj('gate_proj').forward(h, ctx);
        const u = mlp.proj('up_proj').forward(h, ctx);
        h = tf.add(h, tf.mul(mlp.proj('down_proj').forward(tf.mul(tf.tanh(g), u), ctx), 0.5));
      }
      return this.child<LinearLike>('lm_head').forward(h, ctx) as tf.Tensor2D;
    });
  }
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  if (x.length !== y.length) throw new Error(`size mismatch ${x.length} vs ${y.length}`);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

/**
 * Gradients of `sum(f(x) * w)` w.r.t. the adapter's tensors and the input x `[5, 6]` (a random
 * variable; w `[5, 7]` random), for the layer's forward and for `reference(x)`; returns the
 * max abs difference per variable. Disposes its tensors and the layer.
 */
export function layerVsReferenceGrads(
  rng: Rng,
  layer: { forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor; state(name: string): { tensors: Map<string, tf.Variable> }; dispose(): void },
  reference: (x: tf.Tensor2D) => tf.Tensor,
): { name: string; diff: number }[] {
  const x = tf.tidy(() => tf.variable(randTensor(rng, [5, 6])));
  const w = randTensor(rng, [5, 7]);
  const vars = [...layer.state('default').tensors.values(), x];
  const grads = (f: () => tf.Tensor) => {
    const { value, grads: gs } = tf.variableGrads(() => tf.sum(tf.mul(f(), w)) as tf.Scalar, vars);
    value.dispose();
    return vars.map((v) => gs[v.name]);
  };
  const got = grads(() => layer.forward(x, { training: true, auxLosses: [] }));
  const want = grads(() => reference(x as tf.Tensor2D));
  const out = vars.map((v, i) => ({ name: v.name, diff: maxAbsDiff(got[i], want[i]) }));
  tf.dispose([...got, ...want, x, w]);
  layer.dispose();
  return out;
}

/** Run `fn` and return its value and how many tensors it leaked. */
/** Max |a - b| over max |b| (at least 1e-6): the relative difference of two tensors. */
export function relDiff(a: tf.Tensor, b: tf.Tensor): number {
  const scale = Math.max(1e-6, maxOf(Array.from(b.dataSync(), Math.abs))); // no spread: large tensors
  return maxAbsDiff(a, b) / scale;
}

export function leakCheck<T>(fn: () => T): { value: T; leaked: number } {
  const before = tf.memory().numTensors;
  const value = fn();
  return { value, leaked: tf.memory().numTensors - before };
}

/**
 * Central finite differences of `loss()` w.r.t. up to `samples` entries of `v`, compared with
 * `analytic` (the gradient of v). Returns the worst violation of |num - ana| <= atol + rtol*|ana|
 * (<= 0 means pass) and a description.
 */
export function fdCheck(
  v: tf.Variable,
  analytic: Float32Array,
  loss: () => number,
  rng: Rng,
  opts: { eps?: number; samples?: number; atol?: number; rtol?: number } = {},
): { worst: number; detail: string } {
  const eps = opts.eps ?? 3e-3;
  const atol = opts.atol ?? 2e-3;
  const rtol = opts.rtol ?? 2e-2;
  const n = v.size;
  const idx = n <= (opts.samples ?? 16) ? [...Array(n).keys()] : Array.from({ length: opts.samples ?? 16 }, () => rng.int(n));
  const orig = Float32Array.from(v.dataSync());
  let worst = -Infinity;
  let detail = '';
  for (const i of idx) {
    const at = (delta: number): number => {
      const d = Float32Array.from(orig);
      d[i] += delta;
      tf.tidy(() => v.assign(tf.tensor(d, v.shape, 'float32')));
      return loss();
    };
    const num = (at(eps) - at(-eps)) / (2 * eps);
    const ana = analytic[i];
    const viol = Math.abs(num - ana) - (atol + rtol * Math.abs(ana));
    if (viol > worst) {
      worst = viol;
      detail = `index ${i}: numeric ${num}, analytic ${ana}`;
    }
  }
  tf.tidy(() => v.assign(tf.tensor(orig, v.shape, 'float32')));
  return { worst, detail };
}
