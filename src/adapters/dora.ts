/**
 * DoRA (Liu et al. 2024): weight-decomposed LoRA.
 * `W' = m ⊙ (W + s B A) / ||W + s B A||` with the norm taken per output row (PEFT's
 * `torch.linalg.norm(weight, dim=1)` on the `[out, in]` weight), so
 * `y = (m / n) ⊙ (W x + s B A dropout(x)) + b`.
 *
 * As in the paper (§4.3) and PEFT, the norm `n` is treated as a constant in the backward: it
 * is computed from detached copies of A and B and receives no gradient. `m` (PEFT key
 * `lora_magnitude_vector`, shape `[out]`) is initialised to `||W + s B A||` per row, which is
 * `||W||` with the default init (B = 0).
 *
 * With dropout, the base term uses the undropped input (as mlx-lm's DoRA; PEFT recomputes
 * `W dropout(x)` there); without dropout both are identical.
 */
import { z } from 'zod';
import { tf } from '../backend/tf.ts';
import { weightTensor } from '../backend/weightStore.ts';
import { matMul } from '../backend/matmul.ts';
import type { ForwardContext } from '../nn/context.ts';
import type { Linear } from '../nn/linear.ts';
import { LoraPairLayer, loraTensorShapes, type LoraLayerSpec, type LoraState } from './lora.ts';
import type { MergeOptions } from './deltaLayer.ts';
import type { AdapterKindDefinition } from './kind.ts';
import {
  commonFields, fanInFanOutField, loraBiasRefused, lowRankFields, lowRankLayerBase, lowRankPeftFields,
} from './schema.ts';
import { detach, flatten2d, variable } from './lowRank.ts';

export const doraConfigSchema = z.object({ kind: z.literal('dora'), ...commonFields, ...lowRankFields }).strict();
export type DoraConfig = z.infer<typeof doraConfigSchema>;

/** PEFT key suffixes and shapes of one DoRA adapter: LoRA's plus the magnitude `[out]`. */
export function doraTensorShapes(spec: Pick<LoraLayerSpec, 'r'>, dIn: number, dOut: number): Map<string, number[]> {
  const m = loraTensorShapes(spec, dIn, dOut);
  m.set('lora_magnitude_vector', [dOut]);
  return m;
}

export interface DoraState extends LoraState {
  /** Magnitude m `[out]` (`lora_magnitude_vector`). */
  readonly magnitude: tf.Variable;
}

export class DoraLinear extends LoraPairLayer<DoraState> {
  readonly kind = 'dora';

  /** Wrap `base` (frozen) at `modulePath`; add adapters with {@link addAdapter}. */
  constructor(base: Linear, modulePath: string) {
    super(base, modulePath);
  }

  protected createState(name: string, spec: LoraLayerSpec): DoraState {
    const s = this.loraState(name, { ...spec, loraBias: false });
    const norm = this.weightNorm(s);
    const magnitude = variable(norm.dataSync() as Float32Array, [this.outFeatures]);
    norm.dispose();
    s.tensors.set('lora_magnitude_vector', magnitude);
    return { ...s, magnitude };
  }

  /** `||W + s B A||` per output row `[out]`, with no gradient to A or B. */
  weightNorm(s: LoraState): tf.Tensor1D {
    return tf.tidy(() => {
      const a = detach(s.a);
      const b = detach(s.b);
      const w = tf.add(weightTensor(this.baseLayer.weight), tf.mul(matMul(b, a), s.scaling)); // [out, in]
      return tf.sqrt(tf.sum(tf.square(w), 1)) as tf.Tensor1D;
    });
  }

  protected adapterForward(s: DoraState, x: tf.Tensor, ctx: ForwardContext | undefined): tf.Tensor {
    const x2 = flatten2d(x); // [T, in]
    const base = matMul(x2, weightTensor(this.baseLayer.weight), false, true); // [T, out], no bias
    const lora = this.loraDelta(s, x2, ctx); // s * B A dropout(x)
    const scale = tf.div(s.magnitude, this.weightNorm(s)); // [out]
    let y = tf.mul(tf.add(base, lora), scale);
    const bias = this.baseLayer.bias;
    if (bias) y = tf.add(y, bias);
    return y.reshape([...x.shape.slice(0, -1), this.outFeatures]);
  }

  protected mergedWeights(s: DoraState, _opts: MergeOptions): { weight: tf.Tensor2D; bias?: tf.Tensor1D } {
    return tf.tidy(() => {
      const w = tf.add(weightTensor(this.baseLayer.weight), this.deltaWeight(s.name)); // [out, in]
      const norm = tf.sqrt(tf.sum(tf.square(w), 1, true)); // [out, 1]
      const m = s.magnitude.reshape([-1, 1]);
      const weight = tf.mul(w, tf.div(m, norm)) as tf.Tensor2D;
      const bias = this.baseLayer.bias ? (tf.add(this.baseLayer.bias, 0) as tf.Tensor1D) : undefined;
      return { weight, bias };
    });
  }
}

/** DoRA's entry in the adapter registry: stored as PEFT stores it, a LoRA with `use_dora`. */
export const doraKind = {
  kind: 'dora',
  label: 'DoRA',
  schema: doraConfigSchema,
  defaultTargets: ['q_proj', 'v_proj'],
  lowRank: true,
  routes: () => false,
  merge: 'exact',
  peft: {
    peftType: 'LORA',
    claims: (json) => json.use_dora === true,
    fields: [...lowRankPeftFields, loraBiasRefused, { peft: 'use_dora', write: () => true }, fanInFanOutField],
  },
  layerSpec: (c, path) => lowRankLayerBase(c, path),
  tensorShapes: (spec, dIn, dOut) => doraTensorShapes(spec, dIn, dOut),
  createLayer: (base, path) => new DoraLinear(base, path),
  paramsPerLayer: (c, { dIn, dOut }) => c.r * (dIn + dOut) + dOut,
  formulaText: () => 'r(d_in+d_out)+d_out',
  describe: (c) => `dora r=${c.r} alpha=${c.alpha}`,
} satisfies AdapterKindDefinition<DoraConfig, LoraLayerSpec>;
