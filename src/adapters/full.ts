/**
 * FULL: full fine-tuning of the selected linear layers, for the comparison table. While the
 * adapter is active, the wrapped Linear's `weight` (and `bias` with `trainBias`) IS a trainable
 * tf.Variable (a copy of the original, so the model counts each weight once); disabling or
 * deleting the adapter puts the original frozen tensors back.
 *
 * Saved keys: `base_model.model.<module path>.weight` (and `.bias`), as PEFT saves
 * `modules_to_save`.
 */
import { z } from 'zod';
import { tf } from '../backend/tf.ts';
import { variableFrom, type FrozenWeight } from '../backend/weightStore.ts';
import { Linear } from '../nn/linear.ts';
import type { ForwardContext } from '../nn/context.ts';
import { AdapterLayer, frozenClone, type AdapterState } from './layer.ts';
import type { AdapterKindDefinition } from './kind.ts';
import { commonFields } from './schema.ts';

export const fullConfigSchema = z
  .object({
    kind: z.literal('full'),
    ...commonFields,
    /** Also train the biases of the selected modules (when they have one). */
    trainBias: z.boolean().default(false),
  })
  .strict();
export type FullConfig = z.infer<typeof fullConfigSchema>;

/** Per-layer full fine-tuning settings. */
export interface FullLayerSpec {
  trainBias: boolean;
}

export interface FullState extends AdapterState {
  readonly spec: FullLayerSpec;
  /** Trainable copy of the weight `[out, in]`. */
  readonly weight: tf.Variable;
  /** Trainable copy of the bias `[out]` (with `trainBias`, when the layer has one). */
  readonly bias?: tf.Variable;
}

/** Key suffixes and shapes of a full adapter on an `[out, in]` layer. */
export function fullTensorShapes(spec: FullLayerSpec, dIn: number, dOut: number, hasBias: boolean): Map<string, number[]> {
  const m = new Map<string, number[]>([['weight', [dOut, dIn]]]);
  if (spec.trainBias && hasBias) m.set('bias', [dOut]);
  return m;
}

/**
 * Full fine-tuning of one Linear. Its tensors live in `base_layer` while active (not in PEFT
 * dicts), so there is nothing to merge: the kind's registry entry says `merge: "inPlace"`, and
 * the layer is not a `DeltaAdapterLayer`.
 */
export class FullLinear extends AdapterLayer<FullState, FullLayerSpec> {
  readonly kind = 'full';
  private readonly originalWeight: FrozenWeight;
  private readonly originalBias: tf.Tensor1D | undefined;

  constructor(base: Linear, modulePath: string) {
    super(base, modulePath);
    this.originalWeight = base.weight;
    this.originalBias = base.bias;
  }

  /** Create adapter `name`: trainable copies of the weight (and bias). */
  addAdapter(name: string, spec: FullLayerSpec): void {
    const weight = variableFrom(this.originalWeight);
    const bias = spec.trainBias && this.originalBias ? tf.variable(this.originalBias, true) : undefined;
    const tensors = new Map<string, tf.Variable>([['weight', weight]]);
    if (bias) tensors.set('bias', bias);
    this.addState({ name, tensors, spec, weight, bias });
    this.onActivationChanged();
  }

  protected override onActivationChanged(): void {
    const s = this.effectiveAdapter();
    const base = this.baseLayer;
    base.replaceParam('weight', s?.weight ?? this.originalWeight);
    if (this.originalBias) base.replaceParam('bias', s?.bias ?? this.originalBias);
  }

  protected adapterForward(_s: FullState, x: tf.Tensor, ctx: ForwardContext | undefined): tf.Tensor {
    return this.baseLayer.forward(x, ctx); // the base layer holds the adapter's weights now
  }

  /** Frozen copies of adapter `s`'s weight and bias (the original bias when it trains none). */
  private trainedWeights(s: FullState): { weight: tf.Tensor2D; bias?: tf.Tensor1D } {
    const b = s.bias ?? this.originalBias;
    return { weight: frozenClone(s.weight) as tf.Tensor2D, bias: b ? (frozenClone(b) as tf.Tensor1D) : undefined };
  }

  /** The Linear to put back: the active adapter's trained weights with `merge`, else the original. */
  unload(merge: boolean): Linear {
    const s = this.activeAdapter !== undefined ? this.states.get(this.activeAdapter) : undefined;
    let out: Linear;
    if (merge && s) {
      const { weight, bias } = this.trainedWeights(s);
      out = new Linear(weight, bias);
      this.originalWeight.dispose();
      this.originalBias?.dispose();
    } else {
      this.restoreOriginals();
      out = this.baseLayer;
    }
    this.disposeStates();
    return out;
  }

  private restoreOriginals(): void {
    this.baseLayer.replaceParam('weight', this.originalWeight);
    if (this.originalBias) this.baseLayer.replaceParam('bias', this.originalBias);
  }

  override dispose(): void {
    this.restoreOriginals();
    super.dispose();
  }
}

/** Full fine-tuning's entry in the adapter registry. */
export const fullKind = {
  kind: 'full',
  label: 'full fine-tuning',
  schema: fullConfigSchema,
  defaultTargets: 'all-linear',
  lowRank: false,
  routes: () => false,
  merge: 'inPlace',
  peft: { peftType: 'FULL', fields: [{ peft: 'seed', field: 'seed' }, { peft: 'train_bias', field: 'trainBias' }] },
  layerSpec: (c) => ({ trainBias: c.trainBias }),
  tensorShapes: (spec, dIn, dOut, hasBias) => fullTensorShapes(spec, dIn, dOut, hasBias),
  createLayer: (base, path) => new FullLinear(base, path),
  paramsPerLayer: (c, { dIn, dOut, hasBias }) => dIn * dOut + (c.trainBias && hasBias ? dOut : 0),
  formulaText: () => 'd_in d_out',
  describe: () => 'full',
} satisfies AdapterKindDefinition<FullConfig, FullLayerSpec>;
