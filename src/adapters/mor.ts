/**
 * MoR, Mixture of Ranks (Tang et al., arXiv 2410.13408), as specified in
 * docs/mor.md: one LoRA pair A `[r, in]`, B `[out, r]` shared by N experts; expert i
 * is `s * diag(Omega_B[i]) B diag(Omega_A[i]) A`; a dense softmax router `W_g` `[N, in]` mixes
 * them per token:
 *
 *     h = A dropout(x);  g = softmax(W_g x);  delta = s * sum_i g_i * Omega_B[i] ⊙ (B (Omega_A[i] ⊙ h))
 *
 * Fast path: the rank-expansion form. `z[(i,k)] = g_i Omega_A[i,k] h_k` `[T, N r]` and
 * `Bexp^T[(i,k), :] = Omega_B[i, :] ⊙ B[:, k]` `[N r, out]` (built once per forward), then ONE
 * matmul `z Bexp^T`, as one op with its own gradient (rankExpansion.ts). On the native path, with a
 * learned router and no dropout, router and rank expansion together are one op (morFused.ts).
 * {@link morDeltaNaive} (N small products, autodiff) is kept as the test oracle.
 *
 * Router modes: `softmax` (learned, default), `uniform` (g = 1/N, no router tensor), and
 * `balanced` (softmax + load-balance loss pushed to `ctx.auxLosses` while training).
 */
import { z } from 'zod';
import { tf } from '../backend/tf.ts';
import { weightTensor } from '../backend/weightStore.ts';
import { matMul } from '../backend/matmul.ts';
import type { Linear } from '../nn/linear.ts';
import type { ForwardContext } from '../nn/context.ts';
import { Rng } from '../util/rng.ts';
import { UserError } from '../errors.ts';
import type { AdapterState } from './layer.ts';
import { DeltaAdapterLayer, type FixedRoutingLayer, type MergeOptions } from './deltaLayer.ts';
import type { AdapterKindDefinition } from './kind.ts';
import {
  commonFields, loraScaling, lowRankFields, lowRankLayerBase, lowRankPeftFields, routerFields, routerPeftFields,
} from './schema.ts';
import { derivedRng, dropout, flatten2d, initLowRankPair, routerVariables, variable } from './lowRank.ts';
import {
  argmaxAssignment, checkRouting, loadBalanceLoss, projectWithRouter, pushAuxLoss, recordRouting, routerProbs, routerSoftmax,
} from '../routing/router.ts';
import { rankExpansion } from './rankExpansion.ts';
import { morFused, morFusedAvailable } from './morFused.ts';

export const morConfigSchema = z
  .object({
    kind: z.literal('mor'),
    ...commonFields,
    ...lowRankFields,
    ...routerFields,
    /**
     * `softmax` (default, the paper's best): learned dense router; `uniform`: mean of the
     * experts (g = 1/N, no router parameters trained); `balanced`: softmax plus the
     * load-balance loss (coefficient `loadBalanceCoef`).
     */
    routerMode: z.enum(['softmax', 'uniform', 'balanced']).default('softmax'),
    /** Omega_A / Omega_B init **(option)**: all ones, or ones + N(0, omegaNoiseStd). */
    omegaInit: z.enum(['ones', 'ones+noise']).default('ones'),
    /** Std of the noise with `omegaInit: "ones+noise"`. */
    omegaNoiseStd: z.number().nonnegative().default(0.01),
  })
  .strict();
export type MorConfig = z.infer<typeof morConfigSchema>;

/** Per-layer MoR settings (config after rank/alpha patterns). */
export interface MorLayerSpec {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  init: 'default' | 'gaussian' | false;
  numExperts: number;
  routerMode: MorConfig['routerMode'];
  routerInitStd: number;
  routerBias: boolean;
  omegaInit: MorConfig['omegaInit'];
  omegaNoiseStd: number;
  loadBalanceCoef: number;
  seed: number;
}

export interface MorState extends AdapterState {
  readonly spec: MorLayerSpec;
  readonly scaling: number;
  readonly rng: Rng;
  /** The shared tensors A, B, Omega_A, Omega_B. */
  readonly params: MorParams;
  /** Router W_g `[N, in]` (`mor_router.weight`; absent in uniform mode). */
  readonly router?: tf.Variable;
  /** Router bias `[N]` (`mor_router.bias`, with `routerBias`). */
  readonly routerBias?: tf.Variable;
  /** Routing vector `[N]` pinned in place of the router (analysis / static routing), if set. */
  fixedRouting?: Float32Array;
}

/** PEFT-style key suffixes and shapes of one MoR adapter. */
export function morTensorShapes(
  spec: Pick<MorLayerSpec, 'r' | 'numExperts' | 'routerMode' | 'routerBias'>,
  dIn: number,
  dOut: number,
): Map<string, number[]> {
  const { r, numExperts: n } = spec;
  const m = new Map<string, number[]>([
    ['mor_A.weight', [r, dIn]],
    ['mor_B.weight', [dOut, r]],
    ['mor_omega_A', [n, r]],
    ['mor_omega_B', [n, dOut]],
  ]);
  if (spec.routerMode !== 'uniform') {
    m.set('mor_router.weight', [n, dIn]);
    if (spec.routerBias) m.set('mor_router.bias', [n]);
  }
  return m;
}

/** The four shared MoR tensors the forward needs. */
export interface MorParams {
  /** A `[r, in]` (`mor_A.weight`). */
  a: tf.Tensor;
  /** B `[out, r]` (`mor_B.weight`). */
  b: tf.Tensor;
  /** Omega_A `[N, r]` (`mor_omega_A`). */
  omegaA: tf.Tensor;
  /** Omega_B `[N, out]` (`mor_omega_B`). */
  omegaB: tf.Tensor;
}

/**
 * Rank-expansion delta `s * z Bexp^T` `[T, out]` for input x `[T, in]` (already dropped out
 * for the A path) and routing g `[T, N]` (or `[1, N]`, broadcast).
 */
export function morDeltaFast(xd: tf.Tensor2D, p: MorParams, g: tf.Tensor2D, scaling: number): tf.Tensor2D {
  return tf.tidy(() => morDeltaFromRank(matMul(xd, p.a, false, true) as tf.Tensor2D, p, g, scaling));
}

/** {@link morDeltaFast} from `h = A x` `[T, r]`: ONE product `[T, N*r] x [N*r, out]`. */
function morDeltaFromRank(h: tf.Tensor2D, p: MorParams, g: tf.Tensor2D, scaling: number): tf.Tensor2D {
  return tf.tidy(() => {
    const om = tf.mul(p.omegaA, scaling) as tf.Tensor2D; // [N, r]
    return rankExpansion(h, g, om, p.b as tf.Tensor2D, p.omegaB as tf.Tensor2D);
  });
}

/** The per-expert loop: `s * sum_i g_i ⊙ Omega_B[i] ⊙ (B (Omega_A[i] ⊙ A x))`. Test oracle only. */
export function morDeltaNaive(xd: tf.Tensor2D, p: MorParams, g: tf.Tensor2D, scaling: number): tf.Tensor2D {
  return tf.tidy(() => {
    const n = p.omegaA.shape[0];
    const h = matMul(xd, p.a, false, true); // [T, r]
    let acc: tf.Tensor = tf.zeros([xd.shape[0], p.b.shape[0]]);
    for (let i = 0; i < n; i++) {
      const la = p.omegaA.slice([i, 0], [1, -1]); // [1, r]
      const lb = p.omegaB.slice([i, 0], [1, -1]); // [1, out]
      const gi = g.slice([0, i], [-1, 1]); // [T|1, 1]
      const expert = tf.mul(matMul(tf.mul(h, la), p.b, false, true), lb); // [T, out]
      acc = tf.add(acc, tf.mul(expert, gi));
    }
    return tf.mul(acc, scaling) as tf.Tensor2D;
  });
}

export class MorLinear extends DeltaAdapterLayer<MorState, MorLayerSpec> implements FixedRoutingLayer {
  readonly kind = 'mor';

  constructor(base: Linear, modulePath: string) {
    super(base, modulePath);
  }

  /** Create adapter `name`: A, B as LoRA; omegas ones (+ noise); router ~ N(0, routerInitStd). */
  addAdapter(name: string, spec: MorLayerSpec): void {
    const key = `${this.modulePath}/${name}`;
    const rng = derivedRng(spec.seed, `init:${key}`);
    const { r, numExperts: n } = spec;
    const [dIn, dOut] = [this.inFeatures, this.outFeatures];
    const { a, b } = initLowRankPair(spec.init, rng, r, dIn, dOut);
    const omega = (len: number): Float32Array => {
      const o = spec.omegaInit === 'ones+noise' ? rng.normalArray(len, 1, spec.omegaNoiseStd) : new Float32Array(len);
      if (spec.omegaInit === 'ones') o.fill(1);
      return o;
    };
    const params = {
      a: variable(a, [r, dIn]),
      b: variable(b, [dOut, r]),
      omegaA: variable(omega(n * r), [n, r]),
      omegaB: variable(omega(n * dOut), [n, dOut]),
    };
    const tensors = new Map<string, tf.Variable>([
      ['mor_A.weight', params.a],
      ['mor_B.weight', params.b],
      ['mor_omega_A', params.omegaA],
      ['mor_omega_B', params.omegaB],
    ]);
    const routed = spec.routerMode !== 'uniform' ? routerVariables(rng, n, dIn, spec, 'mor', tensors) : {};
    this.addState({
      name, tensors, spec, params, ...routed,
      scaling: loraScaling(spec.alpha, spec.r, spec.useRslora),
      rng: derivedRng(spec.seed, `dropout:${key}`),
    });
  }

  /**
   * Pin adapter `name`'s routing to a fixed vector `[N]` for every token (undefined: use the
   * router again). With a pinned vector the adapter is a plain matrix: see {@link merge}.
   */
  setFixedRouting(name: string, g: ArrayLike<number> | undefined): void {
    const s = this.state(name);
    s.fixedRouting = g === undefined ? undefined : checkRouting(g, s.spec.numExperts, this.modulePath);
  }

  /**
   * Routing weights `[T, N]` (or `[1, N]` when fixed/uniform) for x `[T, in]`; reports stats and
   * aux loss. `logits` `x W_g^T`, when the caller already has them, saves the router product.
   */
  routing(s: MorState, x2: tf.Tensor2D, ctx: ForwardContext | undefined, logits?: tf.Tensor2D): tf.Tensor2D {
    const n = s.spec.numExperts;
    const router = this.learnedRouter(s);
    if (!router) {
      const g = s.fixedRouting ? tf.tensor2d(s.fixedRouting, [1, n]) : tf.fill([1, n], 1 / n) as tf.Tensor2D;
      if (ctx?.routing) recordRouting(ctx, this.modulePath, tf.tile(g, [x2.shape[0], 1]) as tf.Tensor2D);
      return g;
    }
    const g = logits ? routerSoftmax(logits, s.routerBias) : routerProbs(x2, router, s.routerBias);
    this.reportRouting(s, g, ctx);
    return g;
  }

  /** Record the learned router's weights g `[T, N]` and, in balanced mode while training, add the load-balance loss. */
  private reportRouting(s: MorState, g: tf.Tensor2D, ctx: ForwardContext | undefined): void {
    recordRouting(ctx, this.modulePath, g);
    if (s.spec.routerMode === 'balanced' && ctx?.training) {
      pushAuxLoss(ctx, loadBalanceLoss(g, argmaxAssignment(g), ctx.tokenMask), s.spec.loadBalanceCoef);
    }
  }

  /** Adapter `s`'s router W_g when it routes with it (not pinned; uniform mode has none). */
  private learnedRouter(s: MorState): tf.Variable | undefined {
    return s.fixedRouting ? undefined : s.router;
  }

  protected adapterForward(s: MorState, x: tf.Tensor, ctx: ForwardContext | undefined): tf.Tensor {
    const y = this.baseLayer.forward(x, ctx); // [..., out]
    const x2 = flatten2d(x); // [T, in]
    const xd = dropout(x2, s.spec.dropout, ctx, `${this.modulePath}/${s.name}`, s.rng);
    const p = s.params;
    const router = this.learnedRouter(s);
    if (xd === x2 && router && morFusedAvailable()) {
      const fused = morFused(x2, flatten2d(y), { ...p, wg: router, bias: s.routerBias }, s.scaling);
      this.reportRouting(s, fused.g, ctx);
      return fused.out.reshape(y.shape);
    }
    let d: tf.Tensor2D;
    if (xd === x2 && router) {
      const { h, logits } = projectWithRouter(x2, p.a, router);
      d = morDeltaFromRank(h, p, this.routing(s, x2, ctx, logits), s.scaling);
    } else {
      d = morDeltaFast(xd, p, this.routing(s, x2, ctx), s.scaling);
    }
    return tf.add(y, d.reshape(y.shape));
  }

  /** `s * (B ⊙ (Omega_B^T diag(g) Omega_A)) A` `[out, in]`: the adapter under fixed routing g. */
  deltaWeight(name: string, g: ArrayLike<number>): tf.Tensor2D {
    const s = this.state(name);
    const gv = checkRouting(g, s.spec.numExperts, this.modulePath);
    return tf.tidy(() => {
      const p = s.params;
      const m = matMul(tf.mul(p.omegaB, tf.tensor2d(gv, [gv.length, 1])), p.omegaA, true, false); // [out, r]
      return tf.mul(matMul(tf.mul(p.b, m), p.a), s.scaling) as tf.Tensor2D; // [out, in]
    });
  }

  protected mergedWeights(s: MorState, opts: MergeOptions): { weight: tf.Tensor2D; bias?: tf.Tensor1D } {
    const n = s.spec.numExperts;
    const g = opts.routing ?? s.fixedRouting ?? (s.spec.routerMode === 'uniform' ? new Float32Array(n).fill(1 / n) : undefined);
    if (!g) {
      throw new UserError(
        `${this.modulePath}: MoR adapter "${s.name}" has a learned router and cannot be merged; ` +
          'merge with a fixed routing vector instead (mergeWithRouting)',
      );
    }
    return tf.tidy(() => {
      const base = this.baseLayer;
      const weight = tf.add(weightTensor(base.weight), this.deltaWeight(s.name, g)) as tf.Tensor2D;
      return { weight, bias: base.bias ? (tf.add(base.bias, 0) as tf.Tensor1D) : undefined };
    });
  }
}

/** MoR's entry in the adapter registry. */
export const morKind = {
  kind: 'mor',
  label: 'MoR',
  schema: morConfigSchema,
  defaultTargets: ['gate_proj', 'up_proj', 'down_proj'],
  lowRank: true,
  routes: () => true,
  numExperts: (c) => c.numExperts,
  merge: 'fixedRouting',
  mergeNeedsRouting: (c) => c.routerMode !== 'uniform',
  peft: {
    peftType: 'MOR',
    fields: [
      ...lowRankPeftFields, ...routerPeftFields,
      { peft: 'omega_init', field: 'omegaInit' },
      { peft: 'omega_noise_std', field: 'omegaNoiseStd' },
      { peft: 'router_mode', field: 'routerMode' },
      { peft: 'seed', field: 'seed' },
    ],
  },
  layerSpec: (c, path) => ({
    ...lowRankLayerBase(c, path), numExperts: c.numExperts, routerMode: c.routerMode, routerInitStd: c.routerInitStd,
    routerBias: c.routerBias, omegaInit: c.omegaInit, omegaNoiseStd: c.omegaNoiseStd, loadBalanceCoef: c.loadBalanceCoef,
  }),
  tensorShapes: (spec, dIn, dOut) => morTensorShapes(spec, dIn, dOut),
  createLayer: (base, path) => new MorLinear(base, path),
  paramsPerLayer: (c, { dIn, dOut }) => {
    const n = c.numExperts;
    const router = c.routerMode === 'uniform' ? 0 : n * dIn + (c.routerBias ? n : 0);
    return c.r * (dIn + dOut) + n * (c.r + dOut) + router;
  },
  formulaText: (c) => (c.routerMode === 'uniform' ? 'r(d_in+d_out)+N(r+d_out)' : 'r(d_in+d_out)+N(r+d_out)+N d_in'),
  describe: (c) => `mor N=${c.numExperts} r=${c.r} alpha=${c.alpha} router=${c.routerMode}`,
} satisfies AdapterKindDefinition<MorConfig, MorLayerSpec>;
