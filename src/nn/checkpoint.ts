/**
 * Gradient checkpointing of one module call `y = m.forward(x, inp)` (a decoder layer): the
 * forward keeps only its input, and the backward runs the module again under a nested tape to
 * get the gradients. Memory for a training step then holds one `[B, T, hidden]` input per
 * layer instead of every intermediate activation of every layer, for one more forward of
 * each layer in the backward.
 *
 * How it works with tfjs's tape: ops run inside a `tf.customGrad` forward are not recorded,
 * so the layer becomes ONE tape node whose explicit inputs are x and the module's trainable
 * variables (adapter tensors, or the weights under full fine-tuning); its gradient function
 * recomputes the forward on an isolated tape (tape.ts) over those same tensor objects and
 * returns `[dx, ...dvars]`.
 *
 * Side effects of the forward are handled so a step is the same with and without it:
 *  - aux losses (MoE load balance) pushed to `ctx.auxLosses` are the outputs of a second,
 *    tiny tape node whose gradient only hands `d aux` to the layer's node, which adds
 *    `sum(aux * d aux)` to the recomputed objective: the router still gets their gradient;
 *  - routing observations are made once, in the forward (the recompute has no observer);
 *  - dropout masks are replayed: with `ctx.seed` they are a function of the seed and the
 *    module path already; without it, the fallback streams are rewound to the states the
 *    forward recorded in `ctx.dropoutStreams`, and moved back afterwards;
 *  - the tensors of `inp` (rope tables, masks) and `ctx.tokenMask` belong to the caller's
 *    tidy, which ends before the backward: the node saves clones (shared data, no copy).
 * Gradients with respect to anything that is not an explicit input (a frozen weight) are
 * not computed through a checkpointed call.
 */
import { tf } from '../backend/tf.ts';
import type { Rng } from '../util/rng.ts';
import type { Module } from './module.ts';
import type { ForwardContext } from './context.ts';
import { isolatedGradients } from './tape.ts';

/** A module whose forward takes x and a bag of per-forward inputs (tensors, a context). */
export interface CheckpointableModule<I extends { ctx?: ForwardContext }> extends Module {
  forward(x: tf.Tensor3D, inp: I): tf.Tensor3D;
}

type Saver = tf.GradSaveFunc;
type CustomFn = (...args: tf.Tensor[]) => tf.Tensor;

/** `m.forward(x, inp)`, checkpointed (see the module comment). Aux losses go to `inp.ctx` as usual. */
export function checkpointed<I extends { ctx?: ForwardContext }>(m: CheckpointableModule<I>, x: tf.Tensor3D, inp: I): tf.Tensor3D {
  const vars: tf.Variable[] = m.trainableParameters().map(([, v]) => v);
  const ctx = inp.ctx;
  // Tensor-valued fields of inp (and the token mask) to save for the recompute, by key.
  const tensorKeys = Object.keys(inp).filter((k) => (inp as Record<string, unknown>)[k] instanceof tf.Tensor);
  const streams = new Map<Rng, number[]>();
  let aux: tf.Scalar[] = [];
  let dAux: tf.Tensor1D | undefined; // set by the aux node's gradient, read by the layer's

  const layerNode = tf.customGrad(((...args: (tf.Tensor | Saver)[]) => {
    const xIn = args[0] as tf.Tensor3D;
    const save = args[args.length - 1] as Saver;
    const fctx: ForwardContext | undefined = ctx && { ...ctx, auxLosses: [], dropoutStreams: streams };
    const y = m.forward(xIn, { ...inp, ctx: fctx });
    aux = fctx?.auxLosses ?? [];
    const rec = inp as Record<string, unknown>;
    save([xIn, ...tensorKeys.map((k) => rec[k] as tf.Tensor), ...(ctx?.tokenMask ? [ctx.tokenMask] : [])]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
        recompute(m, inp, tensorKeys, ctx, streams, vars, dy as tf.Tensor3D, dAux, saved),
    };
  }) as never) as unknown as CustomFn;

  const y = layerNode(x, ...vars) as tf.Tensor3D;
  if (aux.length === 0 || !ctx) return y;

  // The aux losses as the output of their own node, so they stay on the outer tape.
  const values = aux;
  const auxNode = tf.customGrad(((...args: (tf.Tensor | Saver)[]) => ({
    value: tf.stack(values), // [nAux]
    gradFunc: (dy: tf.Tensor | tf.Tensor[]) => {
      dAux = tf.keep((dy as tf.Tensor1D).clone());
      return args.slice(0, -1).map((t) => tf.zerosLike(t as tf.Tensor));
    },
  })) as never) as unknown as CustomFn;
  const stacked = auxNode(x, ...vars);
  for (let i = 0; i < values.length; i++) ctx.auxLosses.push(tf.keep(stacked.slice([i], [1]).reshape([]) as tf.Scalar));
  stacked.dispose();
  for (const a of values) a.dispose();
  return y;
}

/** The layer node's gradient: run the forward again under a nested tape; `[dx, ...dvars]`. */
function recompute<I extends { ctx?: ForwardContext }>(
  m: CheckpointableModule<I>,
  inp: I,
  tensorKeys: string[],
  ctx: ForwardContext | undefined,
  streams: Map<Rng, number[]>,
  vars: tf.Variable[],
  dy: tf.Tensor3D,
  dAux: tf.Tensor1D | undefined,
  saved: tf.Tensor[],
): tf.Tensor[] {
  const [sx, ...rest] = saved;
  const rinp: Record<string, unknown> = { ...inp };
  tensorKeys.forEach((k, i) => (rinp[k] = rest[i]));
  const rctx: ForwardContext | undefined = ctx && {
    training: ctx.training,
    seed: ctx.seed,
    auxLosses: [],
    tokenMask: ctx.tokenMask ? (rest[tensorKeys.length] as tf.Tensor1D) : undefined,
  };
  rinp.ctx = rctx;
  // Rewind the dropout streams the forward drew from; put them back where they are now after.
  const now = [...streams.keys()].map((r) => [r, r.getState()] as const);
  for (const [r, s] of streams) r.setState(s);
  try {
    return tf.tidy(() => {
      const objective = (): tf.Tensor => {
        const y = m.forward(sx as tf.Tensor3D, rinp as unknown as I);
        if (!dAux) return y;
        // Seed the aux losses' gradient too: d/dy of sum(y * dy) is dy, exactly.
        return tf.add(tf.sum(tf.mul(y, dy)), tf.sum(tf.mul(tf.stack(rctx!.auxLosses), dAux)));
      };
      const { grads } = isolatedGradients(objective, [sx, ...vars], dAux ? undefined : dy);
      return grads.map((g, i) => g ?? tf.zerosLike(i === 0 ? sx : vars[i - 1]));
    });
  } finally {
    for (const [r, s] of now) r.setState(s);
    for (const a of rctx?.auxLosses ?? []) a.dispose();
    dAux?.dispose();
  }
}
