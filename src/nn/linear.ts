/**
 * Dense layer with Hugging Face layout: `weight` [out, in], optional `bias` [out];
 * `y = x W^T + b` over the last dim of x.
 */
import { tf } from '../backend/tf.ts';
import { matMul } from '../backend/matmul.ts';
import { Module } from './module.ts';
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

  /** Takes ownership of `weight` [out, in] and `bias` [out]. */
  constructor(weight: tf.Tensor2D, bias?: tf.Tensor1D) {
    super();
    [this.outFeatures, this.inFeatures] = weight.shape;
    if (bias && bias.shape[0] !== this.outFeatures) {
      throw new Error(`bias shape [${bias.shape}] does not match weight [${weight.shape}]`);
    }
    this.addParam('weight', weight);
    if (bias) this.addParam('bias', bias);
  }

  get weight(): tf.Tensor2D {
    return this.param<tf.Tensor2D>('weight');
  }

  get bias(): tf.Tensor1D | undefined {
    return this.hasParam('bias') ? this.param<tf.Tensor1D>('bias') : undefined;
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      const y = matMul(x, this.weight, false, true); // [..., out]
      return this.bias ? tf.add(y, this.bias) : y;
    });
  }
}
