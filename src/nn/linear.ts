/**
 * Dense layer with Hugging Face layout: `weight` [out, in], optional `bias` [out];
 * `y = x W^T + b` over the last dim of x.
 */
import { tf } from '../backend/tf.ts';
import { matMul } from '../backend/matmul.ts';
import { Module } from './module.ts';
import { weightTensor, type FrozenWeight } from '../backend/weightStore.ts';
import type { ForwardContext } from './context.ts';

/** Anything that maps `[..., in]` to `[..., out]` and can stand where a Linear stood. */
export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor;
}

export class Linear extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;

  /** Takes ownership of `weight` [out, in] (a heap tensor or a stored weight) and `bias` [out]. */
  constructor(weight: FrozenWeight, bias?: tf.Tensor1D) {
    super();
    [this.outFeatures, this.inFeatures] = weight.shape;
    if (bias && bias.shape[0] !== this.outFeatures) {
      throw new Error(`bias shape [${bias.shape}] does not match weight [${weight.shape}]`);
    }
    this.addParam('weight', weight);
    if (bias) this.addParam('bias', bias);
  }

  /**
   * The weight `[out, in]`: a heap tensor, or (frozen base weights of big models) a
   * {@link StoredWeight}; use `weightTensor()` where a heap tensor is needed.
   */
  get weight(): FrozenWeight {
    return this.param<FrozenWeight>('weight');
  }

  get bias(): tf.Tensor1D | undefined {
    return this.hasParam('bias') ? this.param<tf.Tensor1D>('bias') : undefined;
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      const y = matMul(x, weightTensor(this.weight), false, true); // [..., out]
      return this.bias ? tf.add(y, this.bias) : y;
    });
  }
}
