/**
 * HydraLoRA (Tian et al. 2024, "HydraLoRA: An Asymmetric LoRA Architecture"): one A `[r, in]`
 * shared by N heads B_i `[out, r]`, mixed per token by a softmax router `W_g` `[N, in]`:
 *
 *     h = A dropout(x);  g = softmax(W_g x);  delta = s * sum_i g_i B_i h
 *
 * MoR's closest published relative: both share A; HydraLoRA gives each expert a full B head,
 * MoR only two diagonal scalings of one shared B (docs/mor.md).
 *
 * Computed in rank-expansion form: `z[(i,k)] = s g_i h_k` `[T, N r]`, then ONE product with
 * the stacked heads `[N r, out]`; without dropout A and the router share one product.
 * {@link hydraLoraDeltaNaive} (N small products) is the test oracle. Under a fixed routing
 * vector g* the adapter is the matrix `s (sum_i g*_i B_i) A` and merges into W.
 *
 * Keys: `hydra_A.weight` `[r, in]`, `hydra_B.weight` `[N, out, r]` (slice i = head i),
 * `hydra_router.weight` `[N, in]`, `hydra_router.bias` `[N]` (optional).
 */
import { z } from 'zod';
import { tf } from '../backend/tf.ts';
import { matMul } from '../backend/matmul.ts';
import { weightTensor } from '../backend/weightStore.ts';
import type { Linear } from '../nn/linear.ts';
import type { ForwardContext } from '../nn/context.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';
import type { AdapterState } from './layer.ts';
import { DeltaAdapterLayer, type FixedRoutingLayer, type MergeOptions } from './deltaLayer.ts';
import type { AdapterKindDefinition } from './kind.ts';
import {
  commonFields, loraScaling, lowRankFields, lowRankLayerBase, lowRankPeftFields, routerFields, routerPeftFields,
  type LowRankLayerBase,
} from './schema.ts';
import { derivedRng, dropout, flatten2d, kaimingUniform, routerVariables, variable } from './lowRank.ts';
import {
  argmaxAssignment, checkRouting, loadBalanceLoss, projectWithRouter, pushAuxLoss, recordRouting, routerProbs, routerSoftmax,
} from '../routing/router.ts';

export const hydraLoraConfigSchema = z
  .object({
    kind: z.literal('hydralora'),
    ...commonFields,
    ...lowRankFields,
    ...routerFields,
    /** Load-balance loss on/off (coefficient `loadBalanceCoef`). */
    loadBalance: z.boolean().default(false),
  })
  .strict();
export type HydraLoraConfig = z.infer<typeof hydraLoraConfigSchema>;

/** Per-layer HydraLoRA settings. */
export interface HydraLoraLayerSpec extends LowRankLayerBase {
  numExperts: number;
  routerInitStd: number;
  routerBias: boolean;
  loadBalance: boolean;
  loadBalanceCoef: number;
}

export interface HydraLoraState extends AdapterState {
  readonly spec: HydraLoraLayerSpec;
  readonly scaling: number;
  readonly rng: Rng;
  /** Shared A `[r, in]` (`hydra_A.weight`). */
  readonly a: tf.Variable;
  /** The heads B_i stacked `[N, out, r]` (`hydra_B.weight`). */
  readonly b: tf.Variable;
  /** Router W_g `[N, in]` (`hydra_router.weight`). */
  readonly router: tf.Variable;
  /** Router bias `[N]` (`hydra_router.bias`, with `routerBias`). */
  readonly routerBias?: tf.Variable;
  /** Routing vector `[N]` pinned in place of the router, if set. */
  fixedRouting?: Float32Array;
}

/** Key suffixes and shapes of one HydraLoRA adapter. */
export function hydraLoraTensorShapes(spec: Pick<HydraLoraLayerSpec, 'r' | 'numExperts' | 'routerBias'>, dIn: number, dOut: number): Map<string, number[]> {
  const { r, numExperts: n } = spec;
  const m = new Map<string, number[]>([
    ['hydra_A.weight', [r, dIn]],
    ['hydra_B.weight', [n, dOut, r]],
    ['hydra_router.weight', [n, dIn]],
  ]);
  if (spec.routerBias) m.set('hydra_router.bias', [n]);
  return m;
}

/** `s * sum_i g_i B_i h` from `h = A x` `[T, r]`, heads b `[N, out, r]`, g `[T|1, N]` -> `[T, out]`. */
export function hydraLoraDelta(h: tf.Tensor2D, b: tf.Tensor, g: tf.Tensor2D, scaling: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, dOut, r] = b.shape as [number, number, number];
    const t = h.shape[0];
    const gs = tf.mul(g, scaling).reshape([g.shape[0], n, 1]); // [T|1, N, 1]
    const z = tf.mul(h.reshape([t, 1, r]), gs).reshape([t, n * r]); // [T, N*r]
    const bT = tf.transpose(b, [0, 2, 1]).reshape([n * r, dOut]); // [N*r, out]
    return matMul(z, bT) as tf.Tensor2D;
  });
}

/** The per-head loop of {@link hydraLoraDelta}; test oracle only. */
export function hydraLoraDeltaNaive(h: tf.Tensor2D, b: tf.Tensor, g: tf.Tensor2D, scaling: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, dOut, r] = b.shape as [number, number, number];
    let acc: tf.Tensor = tf.zeros([h.shape[0], dOut]);
    for (let i = 0; i < n; i++) {
      const bi = b.slice([i, 0, 0], [1, dOut, r]).reshape([dOut, r]);
      acc = tf.add(acc, tf.mul(matMul(h, bi, false, true), g.slice([0, i], [-1, 1]))); // [T, out]
    }
    return tf.mul(acc, scaling) as tf.Tensor2D;
  });
}

export class HydraLoraLinear extends DeltaAdapterLayer<HydraLoraState, HydraLoraLayerSpec> implements FixedRoutingLayer {
  readonly kind = 'hydralora';

  constructor(base: Linear, modulePath: string) {
    super(base, modulePath);
  }

  /** Create adapter `name`: A as LoRA's, every head as LoRA's B (zeros), router ~ N(0, routerInitStd). */
  addAdapter(name: string, spec: HydraLoraLayerSpec): void {
    const key = `${this.modulePath}/${name}`;
    const rng = derivedRng(spec.seed, `init:${key}`);
    const { r, numExperts: n } = spec;
    const [dIn, dOut] = [this.inFeatures, this.outFeatures];
    const a = spec.init === 'gaussian' ? rng.normalArray(r * dIn, 0, 1 / r) : kaimingUniform(rng, r, dIn);
    const b = new Float32Array(n * dOut * r);
    // init=false: every head random (tests only), as LoRA's B would be.
    if (spec.init === false) for (let i = 0; i < n; i++) b.set(kaimingUniform(rng, dOut, r), i * dOut * r);
    const t = {
      a: variable(a, [r, dIn]),
      b: variable(b, [n, dOut, r]),
    };
    const tensors = new Map<string, tf.Variable>([
      ['hydra_A.weight', t.a],
      ['hydra_B.weight', t.b],
    ]);
    this.addState({
      name, tensors, spec, ...t, ...routerVariables(rng, n, dIn, spec, 'hydra', tensors),
      scaling: loraScaling(spec.alpha, r, spec.useRslora),
      rng: derivedRng(spec.seed, `dropout:${key}`),
    });
  }

  setFixedRouting(name: string, g: ArrayLike<number> | undefined): void {
    const s = this.state(name);
    s.fixedRouting = g === undefined ? undefined : checkRouting(g, s.spec.numExperts, this.modulePath);
  }

  /** Gates `[T, N]` (`[1, N]` when pinned); reports routing and the aux loss. */
  private routing(s: HydraLoraState, x2: tf.Tensor2D, ctx: ForwardContext | undefined, logits?: tf.Tensor2D): tf.Tensor2D {
    const n = s.spec.numExperts;
    if (s.fixedRouting) {
      const g = tf.tensor2d(s.fixedRouting, [1, n]);
      if (ctx?.routing) recordRouting(ctx, this.modulePath, tf.tile(g, [x2.shape[0], 1]) as tf.Tensor2D);
      return g;
    }
    const g = logits ? routerSoftmax(logits, s.routerBias) : routerProbs(x2, s.router, s.routerBias);
    recordRouting(ctx, this.modulePath, g);
    if (s.spec.loadBalance && ctx?.training) {
      pushAuxLoss(ctx, loadBalanceLoss(g, argmaxAssignment(g), ctx.tokenMask), s.spec.loadBalanceCoef);
    }
    return g;
  }

  protected adapterForward(s: HydraLoraState, x: tf.Tensor, ctx: ForwardContext | undefined): tf.Tensor {
    const y = this.baseLayer.forward(x, ctx); // [..., out]
    const x2 = flatten2d(x); // [T, in]
    const xd = dropout(x2, s.spec.dropout, ctx, `${this.modulePath}/${s.name}`, s.rng);
    const { a, b } = s;
    let d: tf.Tensor2D;
    if (xd === x2 && !s.fixedRouting) {
      const { h, logits } = projectWithRouter(x2, a, s.router);
      d = hydraLoraDelta(h, b, this.routing(s, x2, ctx, logits), s.scaling);
    } else {
      d = hydraLoraDelta(matMul(xd, a, false, true) as tf.Tensor2D, b, this.routing(s, x2, ctx), s.scaling);
    }
    return tf.add(y, d.reshape(y.shape));
  }

  protected mergedWeights(s: HydraLoraState, opts: MergeOptions): { weight: tf.Tensor2D; bias?: tf.Tensor1D } {
    const g = opts.routing ?? s.fixedRouting;
    if (!g) {
      throw new UserError(
        `${this.modulePath}: HydraLoRA adapter "${s.name}" has a learned router and cannot be merged; ` +
          'merge with a fixed routing vector instead (mergeWithRouting)',
      );
    }
    const gv = checkRouting(g, s.spec.numExperts, this.modulePath);
    return tf.tidy(() => {
      const { a, b } = s;
      const n = gv.length;
      const mixed = tf.sum(tf.mul(b, tf.tensor3d(gv, [n, 1, 1])), 0); // sum_i g_i B_i [out, r]
      const base = this.baseLayer;
      const weight = tf.add(weightTensor(base.weight), tf.mul(matMul(mixed, a), s.scaling)) as tf.Tensor2D; // [out, in]
      return { weight, bias: base.bias ? (tf.add(base.bias, 0) as tf.Tensor1D) : undefined };
    });
  }
}

/** HydraLoRA's entry in the adapter registry. */
export const hydraLoraKind = {
  kind: 'hydralora',
  label: 'HydraLoRA',
  schema: hydraLoraConfigSchema,
  defaultTargets: ['gate_proj', 'up_proj', 'down_proj'],
  lowRank: true,
  routes: () => true,
  numExperts: (c) => c.numExperts,
  merge: 'fixedRouting',
  mergeNeedsRouting: () => true,
  peft: {
    peftType: 'HYDRALORA',
    fields: [
      ...lowRankPeftFields, ...routerPeftFields,
      { peft: 'load_balance', field: 'loadBalance' },
      { peft: 'seed', field: 'seed' },
    ],
  },
  layerSpec: (c, path) => ({
    ...lowRankLayerBase(c, path), numExperts: c.numExperts, routerInitStd: c.routerInitStd, routerBias: c.routerBias,
    loadBalance: c.loadBalance, loadBalanceCoef: c.loadBalanceCoef,
  }),
  tensorShapes: (spec, dIn, dOut) => hydraLoraTensorShapes(spec, dIn, dOut),
  createLayer: (base, path) => new HydraLoraLinear(base, path),
  paramsPerLayer: (c, { dIn, dOut }) => {
    const n = c.numExperts;
    return c.r * dIn + n * c.r * dOut + n * dIn + (c.routerBias ? n : 0);
  },
  formulaText: () => 'r d_in+N r d_out+N d_in',
  describe: (c) => `hydralora N=${c.numExperts} r=${c.r} alpha=${c.alpha}${c.loadBalance ? ' +lb' : ''}`,
} satisfies AdapterKindDefinition<HydraLoraConfig, HydraLoraLayerSpec>;
