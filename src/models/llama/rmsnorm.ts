/** Root-mean-square layer norm (`LlamaRMSNorm`): `weight * x / sqrt(mean(x^2) + eps)`. */
import { tf } from '../../backend/tf.ts';
import { nativeLayerKernelsActive, RMS_NORM, RMS_NORM_GRAD } from '../../backend/layerKernels.ts';
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
    return rmsNorm(x, this.weight, this.eps);
  }
}

/**
 * `weight * x * rsqrt(mean(x^2, -1) + eps)` for x `[..., D]`, weight `[D]`, differentiable in
 * both. On the native path one fused multi-threaded kernel each way (src/backend/layerKernels.ts)
 * with the hand-written gradient; values equal the tfjs-op version up to float rounding.
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  return nativeLayerKernelsActive() ? rmsNormNative(x, weight, eps) : rmsNormOps(x, weight, eps);
}

function rmsNormOps(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true); // [..., 1]
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
  });
}

function rmsNormNative(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, wi] = args as tf.Tensor[];
    const save = args[2] as tf.GradSaveFunc;
    // r: the per-row rsqrt [R], all that backward needs besides x and the weight.
    const [y, r] = tf.engine().runKernel(RMS_NORM, { x: xi, weight: wi }, { eps }) as unknown as [tf.Tensor, tf.Tensor];
    save([xi, wi, r]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, sw, sr] = saved;
        return tf.engine().runKernel(RMS_NORM_GRAD, { x: sx, weight: sw, r: sr, dy: dy as tf.Tensor }) as unknown as tf.Tensor[];
      },
    };
  }) as unknown as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;
  return f(x, weight);
}
