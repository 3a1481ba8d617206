/**
 * LoRA (Hu et al. 2021): `y = W x + b + s * B A dropout(x)` with A `[r, in]`, B `[out, r]`,
 * `s = alpha / r` (rsLoRA: `alpha / sqrt(r)`). Names, defaults and init follow PEFT's
 * `tuners/lora/layer.py`; the low-rank path is two thin products (`x A^T`, then `· B^T`), the
 * `[out, in]` matrix `B A` is only formed when merging.
 */
import { z } from 'zod';
import { tf } from '../backend/tf.ts';
import { weightTensor } from '../backend/weightStore.ts';
import { matMul } from '../backend/matmul.ts';
import type { Linear } from '../nn/linear.ts';
import type { ForwardContext } from '../nn/context.ts';
import { Rng } from '../util/rng.ts';
import type { AdapterState } from './layer.ts';
import { DeltaAdapterLayer, type MergeOptions } from './deltaLayer.ts';
import type { AdapterKindDefinition } from './kind.ts';
import {
  commonFields, fanInFanOutField, loraScaling, lowRankFields, lowRankLayerBase, lowRankPeftFields,
} from './schema.ts';
import { derivedRng, dropout, flatten2d, initLowRankPair, variable } from './lowRank.ts';

export const loraConfigSchema = z
  .object({
    kind: z.literal('lora'),
    ...commonFields,
    ...lowRankFields,
    /** Add a trainable bias to `lora_B` (PEFT `lora_bias`); it is scaled by `s` like the product. */
    loraBias: z.boolean().default(false),
  })
  .strict();
export type LoraConfig = z.infer<typeof loraConfigSchema>;

/** Per-layer LoRA settings (the config after rank/alpha patterns are resolved). */
export interface LoraLayerSpec {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  init: 'default' | 'gaussian' | false;
  /** Trainable bias on `lora_B` (PEFT `lora_bias`). */
  loraBias?: boolean;
  /** Seed of the init and dropout streams (mixed with module path and adapter name). */
  seed: number;
}

export interface LoraState extends AdapterState {
  readonly spec: LoraLayerSpec;
  readonly scaling: number;
  /** Dropout stream when the forward context has no seed. */
  readonly rng: Rng;
  /** A `[r, in]` (`lora_A.weight`). */
  readonly a: tf.Variable;
  /** B `[out, r]` (`lora_B.weight`). */
  readonly b: tf.Variable;
  /** Bias of B `[out]` (`lora_B.bias`, with `loraBias`). */
  readonly bBias?: tf.Variable;
}

/** PEFT key suffixes and shapes of one LoRA adapter on an `[out, in]` layer. */
export function loraTensorShapes(spec: Pick<LoraLayerSpec, 'r' | 'loraBias'>, dIn: number, dOut: number): Map<string, number[]> {
  const m = new Map<string, number[]>([
    ['lora_A.weight', [spec.r, dIn]],
    ['lora_B.weight', [dOut, spec.r]],
  ]);
  if (spec.loraBias) m.set('lora_B.bias', [dOut]);
  return m;
}

/**
 * What LoRA and DoRA share: the low-rank pair A, B, its init and its delta. `S` is the kind's
 * state (LoRA's, or DoRA's with the magnitude added).
 */
export abstract class LoraPairLayer<S extends LoraState> extends DeltaAdapterLayer<S, LoraLayerSpec> {
  /** Create adapter `name` with fresh parameters (PEFT init). */
  addAdapter(name: string, spec: LoraLayerSpec): void {
    this.addState(this.createState(name, spec));
  }

  /** The state of a new adapter `name`. */
  protected abstract createState(name: string, spec: LoraLayerSpec): S;

  /** A new LoRA pair (and B bias) for adapter `name`, initialised as PEFT does. */
  protected loraState(name: string, spec: LoraLayerSpec): LoraState {
    const key = `${this.modulePath}/${name}`;
    const rng = derivedRng(spec.seed, `init:${key}`);
    const init = initLowRankPair(spec.init, rng, spec.r, this.inFeatures, this.outFeatures);
    const a = variable(init.a, [spec.r, this.inFeatures]);
    const b = variable(init.b, [this.outFeatures, spec.r]);
    const tensors = new Map<string, tf.Variable>([
      ['lora_A.weight', a],
      ['lora_B.weight', b],
    ]);
    let bBias: tf.Variable | undefined;
    if (spec.loraBias) {
      const bias = spec.init === false ? rng.uniformArray(this.outFeatures, -1 / Math.sqrt(spec.r), 1 / Math.sqrt(spec.r)) : new Float32Array(this.outFeatures);
      bBias = variable(bias, [this.outFeatures]);
      tensors.set('lora_B.bias', bBias);
    }
    return {
      name,
      tensors,
      spec,
      scaling: loraScaling(spec.alpha, spec.r, spec.useRslora),
      rng: derivedRng(spec.seed, `dropout:${key}`),
      a,
      b,
      bBias,
    };
  }

  /** `s * (B A dropout(x) + b_B)` as `[T, out]` for x `[T, in]`. */
  protected loraDelta(s: S, x2: tf.Tensor2D, ctx: ForwardContext | undefined): tf.Tensor2D {
    const xd = dropout(x2, s.spec.dropout, ctx, `${this.modulePath}/${s.name}`, s.rng);
    // Scale the thin [T, r] activation rather than the [T, out] result.
    const h = tf.mul(matMul(xd, s.a, false, true), s.scaling); // [T, r]
    const d = matMul(h, s.b, false, true) as tf.Tensor2D; // [T, out]
    return s.bBias ? tf.add(d, tf.mul(s.bBias, s.scaling)) : d;
  }

  /** `s * B A` `[out, in]` (merging only). */
  deltaWeight(name: string): tf.Tensor2D {
    const s = this.state(name);
    return tf.tidy(() => tf.mul(matMul(s.b, s.a), s.scaling) as tf.Tensor2D);
  }
}

export class LoraLinear extends LoraPairLayer<LoraState> {
  readonly kind = 'lora';

  /** Wrap `base` (frozen) at `modulePath`; add adapters with {@link addAdapter}. */
  constructor(base: Linear, modulePath: string) {
    super(base, modulePath);
  }

  protected createState(name: string, spec: LoraLayerSpec): LoraState {
    return this.loraState(name, spec);
  }

  protected adapterForward(s: LoraState, x: tf.Tensor, ctx: ForwardContext | undefined): tf.Tensor {
    const y = this.baseLayer.forward(x, ctx); // [..., out]
    const d = this.loraDelta(s, flatten2d(x), ctx);
    return tf.add(y, d.reshape(y.shape));
  }

  protected mergedWeights(s: LoraState, _opts: MergeOptions): { weight: tf.Tensor2D; bias?: tf.Tensor1D } {
    return tf.tidy(() => {
      const base = this.baseLayer;
      const weight = tf.add(weightTensor(base.weight), this.deltaWeight(s.name)) as tf.Tensor2D;
      let bias = base.bias ? tf.add(base.bias, 0) as tf.Tensor1D : undefined;
      if (s.bBias) bias = tf.add(bias ?? tf.zeros([this.outFeatures]), tf.mul(s.bBias, s.scaling)) as tf.Tensor1D;
      return { weight, bias };
    });
  }
}

/** LoRA's entry in the adapter registry. */
export const loraKind = {
  kind: 'lora',
  label: 'LoRA',
  schema: loraConfigSchema,
  defaultTargets: ['q_proj', 'v_proj'],
  lowRank: true,
  routes: () => false,
  merge: 'exact',
  peft: {
    peftType: 'LORA',
    claims: (json) => json.use_dora !== true,
    fields: [...lowRankPeftFields, { peft: 'lora_bias', field: 'loraBias' }, { peft: 'use_dora', write: () => false }, fanInFanOutField],
  },
  layerSpec: (c, path) => ({ ...lowRankLayerBase(c, path), loraBias: c.loraBias }),
  tensorShapes: (spec, dIn, dOut) => loraTensorShapes(spec, dIn, dOut),
  createLayer: (base, path) => new LoraLinear(base, path),
  paramsPerLayer: (c, { dIn, dOut }) => c.r * (dIn + dOut) + (c.loraBias ? dOut : 0),
  formulaText: (c) => (c.loraBias ? 'r(d_in+d_out)+d_out' : 'r(d_in+d_out)'),
  describe: (c) => `lora r=${c.r} alpha=${c.alpha}`,
} satisfies AdapterKindDefinition<LoraConfig, LoraLayerSpec>;
