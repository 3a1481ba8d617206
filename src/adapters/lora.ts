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
import { AdapterLayer, type AdapterState, type MergeOptions } from './layer.ts';
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

export class LoraLinear extends AdapterLayer<LoraState, LoraLayerSpec> {
  readonly kind: string = 'lora';

  /** Wrap `base` (frozen) at `modulePath`; add adapters with {@link addAdapter}. */
  constructor(base: Linear, modulePath: string) {
    super(base, modulePath);
  }

  /** Create adapter `name` with fresh parameters (PEFT init). */
  addAdapter(name: string, spec: LoraLayerSpec): void {
    this.addState(this.createState(name, spec));
  }

  protected createState(name: string, spec: LoraLayerSpec): LoraState {
    const key = `${this.modulePath}/${name}`;
    const rng = derivedRng(spec.seed, `init:${key}`);
    const { a, b } = initLowRankPair(spec.init, rng, spec.r, this.inFeatures, this.outFeatures);
    const tensors = new Map<string, tf.Variable>([
      ['lora_A.weight', variable(a, [spec.r, this.inFeatures])],
      ['lora_B.weight', variable(b, [this.outFeatures, spec.r])],
    ]);
    if (spec.loraBias) {
      const bias = spec.init === false ? rng.uniformArray(this.outFeatures, -1 / Math.sqrt(spec.r), 1 / Math.sqrt(spec.r)) : new Float32Array(this.outFeatures);
      tensors.set('lora_B.bias', variable(bias, [this.outFeatures]));
    }
    return {
      name,
      tensors,
      spec,
      scaling: loraScaling(spec.alpha, spec.r, spec.useRslora),
      rng: derivedRng(spec.seed, `dropout:${key}`),
    };
  }

  /** `s * (B A dropout(x) + b_B)` as `[T, out]` for x `[T, in]`. */
  protected loraDelta(s: LoraState, x2: tf.Tensor2D, ctx: ForwardContext | undefined): tf.Tensor2D {
    const xd = dropout(x2, s.spec.dropout, ctx, `${this.modulePath}/${s.name}`, s.rng);
    // Scale the thin [T, r] activation rather than the [T, out] result.
    const h = tf.mul(matMul(xd, s.tensors.get('lora_A.weight')!, false, true), s.scaling); // [T, r]
    const d = matMul(h, s.tensors.get('lora_B.weight')!, false, true) as tf.Tensor2D; // [T, out]
    const bb = s.tensors.get('lora_B.bias');
    return bb ? tf.add(d, tf.mul(bb, s.scaling)) : d;
  }

  protected adapterForward(s: LoraState, x: tf.Tensor, ctx: ForwardContext | undefined): tf.Tensor {
    const y = this.baseLayer.forward(x, ctx); // [..., out]
    const d = this.loraDelta(s, flatten2d(x), ctx);
    return tf.add(y, d.reshape(y.shape));
  }

  /** `s * B A` `[out, in]` (merging only). */
  deltaWeight(name: string): tf.Tensor2D {
    const s = this.state(name);
    return tf.tidy(() => tf.mul(matMul(s.tensors.get('lora_B.weight')!, s.tensors.get('lora_A.weight')!), s.scaling) as tf.Tensor2D);
  }

  protected mergedWeights(s: LoraState, _opts: MergeOptions): { weight: tf.Tensor2D; bias?: tf.Tensor1D } {
    return tf.tidy(() => {
      const base = this.baseLayer;
      const weight = tf.add(weightTensor(base.weight), this.deltaWeight(s.name)) as tf.Tensor2D;
      const bb = s.tensors.get('lora_B.bias');
      let bias = base.bias ? tf.add(base.bias, 0) as tf.Tensor1D : undefined;
      if (bb) bias = tf.add(bias ?? tf.zeros([this.outFeatures]), tf.mul(bb, s.scaling)) as tf.Tensor1D;
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
