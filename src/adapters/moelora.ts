/**
 * MoELoRA (the MoR paper's baseline; LoRAMoE / MixLoRA family): N independent LoRA experts of
 * rank `r_e`, A_i `[r_e, in]`, B_i `[out, r_e]`, mixed per token by a softmax router
 * `W_g` `[N, in]`: `delta = s * sum_i g_i(x) B_i A_i dropout(x)`, `s = alpha / r_e`.
 * Optional top-k (keep the k largest g_i, renormalise) and load-balance loss
 * (`N * sum_i f_i P_i`, pushed to `ctx.auxLosses` while training, padding masked).
 *
 * Computed like MoR in rank-expansion form: the experts' A stacked `[N r_e, in]` give
 * `h` `[T, N r_e]` in one product, gated by g, and one product with the stacked B. Every
 * expert is evaluated (top-k zeroes the gates, it does not skip the work).
 *
 * Keys (our extension of the PEFT layout): `moelora_A.weight` `[N, r_e, in]`,
 * `moelora_B.weight` `[N, out, r_e]` (slice i is expert i's PEFT `lora_A` / `lora_B`),
 * `moelora_router.weight` `[N, in]`, `moelora_router.bias` `[N]` (optional).
 */
import { z } from 'zod';
import { tf } from '../backend/tf.ts';
import { matMul } from '../backend/matmul.ts';
import type { Linear } from '../nn/linear.ts';
import type { ForwardContext } from '../nn/context.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';
import type { AdapterState } from './layer.ts';
import { DeltaAdapterLayer, type MergeOptions } from './deltaLayer.ts';
import type { AdapterKindDefinition } from './kind.ts';
import {
  commonFields, loraScaling, lowRankFields, lowRankLayerBase, lowRankPeftFields, routerFields, routerPeftFields,
} from './schema.ts';
import { derivedRng, dropout, flatten2d, initLowRankPair, routerVariables, variable } from './lowRank.ts';
import {
  argmaxAssignment, loadBalanceLoss, projectWithRouter, pushAuxLoss, recordRouting, routerProbs, routerSoftmax,
  topKRenormalize,
} from '../routing/router.ts';

export const moeLoraConfigSchema = z
  .object({
    kind: z.literal('moelora'),
    ...commonFields,
    ...lowRankFields,
    ...routerFields,
    /** Keep only the top-k experts per token and renormalise; absent = dense softmax. */
    topK: z.number().int().positive().optional(),
    /** Load-balance loss on/off (coefficient `loadBalanceCoef`). */
    loadBalance: z.boolean().default(false),
  })
  .strict();
export type MoeLoraConfig = z.infer<typeof moeLoraConfigSchema>;

/** Per-layer MoELoRA settings. `r` is the per-expert rank r_e. */
export interface MoeLoraLayerSpec {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  init: 'default' | 'gaussian' | false;
  numExperts: number;
  topK?: number;
  loadBalance: boolean;
  loadBalanceCoef: number;
  routerInitStd: number;
  routerBias: boolean;
  seed: number;
}

export interface MoeLoraState extends AdapterState {
  readonly spec: MoeLoraLayerSpec;
  readonly scaling: number;
  readonly rng: Rng;
  /** The experts' A stacked `[N, r_e, in]` (`moelora_A.weight`). */
  readonly a: tf.Variable;
  /** The experts' B stacked `[N, out, r_e]` (`moelora_B.weight`). */
  readonly b: tf.Variable;
  /** Router W_g `[N, in]` (`moelora_router.weight`). */
  readonly router: tf.Variable;
  /** Router bias `[N]` (`moelora_router.bias`, with `routerBias`). */
  readonly routerBias?: tf.Variable;
}

/** Key suffixes and shapes of one MoELoRA adapter. */
export function moeLoraTensorShapes(
  spec: Pick<MoeLoraLayerSpec, 'r' | 'numExperts' | 'routerBias'>,
  dIn: number,
  dOut: number,
): Map<string, number[]> {
  const { r, numExperts: n } = spec;
  const m = new Map<string, number[]>([
    ['moelora_A.weight', [n, r, dIn]],
    ['moelora_B.weight', [n, dOut, r]],
    ['moelora_router.weight', [n, dIn]],
  ]);
  if (spec.routerBias) m.set('moelora_router.bias', [n]);
  return m;
}

export class MoeLoraLinear extends DeltaAdapterLayer<MoeLoraState, MoeLoraLayerSpec> {
  readonly kind = 'moelora';

  constructor(base: Linear, modulePath: string) {
    super(base, modulePath);
  }

  /** Create adapter `name`: each expert initialised as a PEFT LoRA; router ~ N(0, routerInitStd). */
  addAdapter(name: string, spec: MoeLoraLayerSpec): void {
    const key = `${this.modulePath}/${name}`;
    const rng = derivedRng(spec.seed, `init:${key}`);
    const { r, numExperts: n } = spec;
    const [dIn, dOut] = [this.inFeatures, this.outFeatures];
    const a = new Float32Array(n * r * dIn);
    const b = new Float32Array(n * dOut * r);
    for (let i = 0; i < n; i++) {
      const e = initLowRankPair(spec.init, rng, r, dIn, dOut);
      a.set(e.a, i * r * dIn);
      b.set(e.b, i * dOut * r);
    }
    const t = {
      a: variable(a, [n, r, dIn]),
      b: variable(b, [n, dOut, r]),
    };
    const tensors = new Map<string, tf.Variable>([
      ['moelora_A.weight', t.a],
      ['moelora_B.weight', t.b],
    ]);
    this.addState({
      name, tensors, spec, ...t, ...routerVariables(rng, n, dIn, spec, 'moelora', tensors),
      scaling: loraScaling(spec.alpha, r, spec.useRslora),
      rng: derivedRng(spec.seed, `dropout:${key}`),
    });
  }

  /**
   * Gates `[T, N]` (top-k renormalised when set); reports routing and the aux loss. `logits`
   * `x W_g^T`, when the caller already has them, saves the router product.
   */
  routing(s: MoeLoraState, x2: tf.Tensor2D, ctx: ForwardContext | undefined, logits?: tf.Tensor2D): tf.Tensor2D {
    const probs = logits ? routerSoftmax(logits, s.routerBias) : routerProbs(x2, s.router, s.routerBias);
    let g = probs;
    let assigned: tf.Tensor2D | undefined;
    if (s.spec.topK !== undefined && s.spec.topK < s.spec.numExperts) {
      const tk = topKRenormalize(probs, s.spec.topK);
      g = tk.weights;
      assigned = tk.selected;
    }
    recordRouting(ctx, this.modulePath, g);
    if (s.spec.loadBalance && ctx?.training) {
      pushAuxLoss(ctx, loadBalanceLoss(probs, assigned ?? argmaxAssignment(probs), ctx.tokenMask), s.spec.loadBalanceCoef);
    }
    return g;
  }

  protected adapterForward(s: MoeLoraState, x: tf.Tensor, ctx: ForwardContext | undefined): tf.Tensor {
    const y = this.baseLayer.forward(x, ctx); // [..., out]
    const x2 = flatten2d(x); // [T, in]
    const xd = dropout(x2, s.spec.dropout, ctx, `${this.modulePath}/${s.name}`, s.rng);
    const { a, b } = s;
    let d: tf.Tensor2D;
    if (xd === x2) {
      // No dropout: the stacked A_i and the router share one product (see projectWithRouter).
      const { h, logits } = projectWithRouter(x2, a.reshape([-1, this.inFeatures]), s.router) // A stacked [N r_e, in];
      d = moeLoraDeltaFromRank(h, b, this.routing(s, x2, ctx, logits), s.scaling);
    } else {
      d = moeLoraDelta(xd, a, b, this.routing(s, x2, ctx), s.scaling);
    }
    return tf.add(y, d.reshape(y.shape));
  }

  protected mergedWeights(s: MoeLoraState, _opts: MergeOptions): never {
    throw new UserError(
      `${this.modulePath}: MoELoRA adapter "${s.name}" routes per token and cannot be merged into the base weight`,
    );
  }
}

/**
 * `s * sum_i g_i B_i A_i x` in rank-expansion form: x `[T, in]`, A `[N, r, in]`,
 * B `[N, out, r]`, g `[T, N]` -> `[T, out]`.
 */
export function moeLoraDelta(xd: tf.Tensor2D, a: tf.Tensor, b: tf.Tensor, g: tf.Tensor2D, scaling: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, r, dIn] = a.shape as [number, number, number];
    return moeLoraDeltaFromRank(matMul(xd, a.reshape([n * r, dIn]), false, true) as tf.Tensor2D, b, g, scaling);
  });
}

/** {@link moeLoraDelta} from the stacked expert inputs `h = x [A_1; ...; A_N]ᵀ` `[T, N*r]`. */
function moeLoraDeltaFromRank(h: tf.Tensor2D, b: tf.Tensor, g: tf.Tensor2D, scaling: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, dOut, r] = b.shape as [number, number, number];
    const t = h.shape[0];
    const z = tf.mul(h.reshape([t, n, r]), tf.mul(g, scaling).reshape([t, n, 1])).reshape([t, n * r]);
    const bT = tf.transpose(b, [0, 2, 1]).reshape([n * r, dOut]); // [N*r, out]
    return matMul(z, bT) as tf.Tensor2D;
  });
}

/** Per-expert loop of {@link moeLoraDelta}; test oracle only. */
export function moeLoraDeltaNaive(xd: tf.Tensor2D, a: tf.Tensor, b: tf.Tensor, g: tf.Tensor2D, scaling: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, r, dIn] = a.shape as [number, number, number];
    const dOut = b.shape[1] as number;
    let acc: tf.Tensor = tf.zeros([xd.shape[0], dOut]);
    for (let i = 0; i < n; i++) {
      const ai = a.slice([i, 0, 0], [1, r, dIn]).reshape([r, dIn]);
      const bi = b.slice([i, 0, 0], [1, dOut, r]).reshape([dOut, r]);
      const e = matMul(matMul(xd, ai, false, true), bi, false, true); // [T, out]
      acc = tf.add(acc, tf.mul(e, g.slice([0, i], [-1, 1])));
    }
    return tf.mul(acc, scaling) as tf.Tensor2D;
  });
}

/** MoELoRA's entry in the adapter registry. */
export const moeLoraKind = {
  kind: 'moelora',
  label: 'MoELoRA',
  schema: moeLoraConfigSchema,
  validate: (c) => (c.topK !== undefined && c.topK > c.numExperts ? `topK (${c.topK}) must be <= numExperts (${c.numExperts})` : undefined),
  defaultTargets: ['gate_proj', 'up_proj', 'down_proj'],
  lowRank: true,
  routes: () => true,
  numExperts: (c) => c.numExperts,
  merge: 'never',
  peft: {
    peftType: 'MOELORA',
    fields: [
      ...lowRankPeftFields, ...routerPeftFields,
      { peft: 'load_balance', field: 'loadBalance' },
      { peft: 'seed', field: 'seed' },
      { peft: 'top_k', field: 'topK' },
    ],
  },
  layerSpec: (c, path) => ({
    ...lowRankLayerBase(c, path), numExperts: c.numExperts, topK: c.topK, loadBalance: c.loadBalance,
    loadBalanceCoef: c.loadBalanceCoef, routerInitStd: c.routerInitStd, routerBias: c.routerBias,
  }),
  tensorShapes: (spec, dIn, dOut) => moeLoraTensorShapes(spec, dIn, dOut),
  createLayer: (base, path) => new MoeLoraLinear(base, path),
  paramsPerLayer: (c, { dIn, dOut }) => {
    const n = c.numExperts;
    return n * c.r * (dIn + dOut) + n * dIn + (c.routerBias ? n : 0);
  },
  formulaText: () => 'N r_e(d_in+d_out)+N d_in',
  describe: (c) => `moelora N=${c.numExperts} r_e=${c.r} alpha=${c.alpha}${c.topK ? ` top${c.topK}` : ''}${c.loadBalance ? ' +lb' : ''}`,
  rankText: (r) => `r_e=${r} per expert`,
} satisfies AdapterKindDefinition<MoeLoraConfig, MoeLoraLayerSpec>;
