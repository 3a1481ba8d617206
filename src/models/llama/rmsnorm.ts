/** Root-mean-square layer norm (`LlamaRMSNorm`): `weight * x / sqrt(mean(x^2) + eps)`. */
import { tf } from '../../backend/tf.ts';
import { Module } from '../../nn/module.ts';

export class RMSNorm extends Module {
  readonly eps: number;

  /** Takes ownership of `weight` `[hidden]`. */
  constructor(weight: tf.Tensor1D, eps: number) {
    super();
    this.eps = eps;
    this.addParam('weight', weight);
  }

  get weight(): tf.Tensor1D {
    return this.param<tf.Tensor1D>('weight');
  }

  /** x `[..., hidden]` -> same shape. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const variance = tf.mean(tf.square(x), -1, true); // [..., 1]
      return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, this.eps))), this.weight);
    });
  }
}
