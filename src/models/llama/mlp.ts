/** SwiGLU feed-forward (`LlamaMLP`): `down(silu(gate(x)) * up(x))`. */
import { tf } from '../../backend/tf.ts';
import { nativeLayerKernelsActive, SWIGLU, SWIGLU_GRAD } from '../../backend/layerKernels.ts';
import { Module } from '../../nn/module.ts';
import type { LinearLike } from '../../nn/linear.ts';
import type { ForwardContext } from '../../nn/context.ts';
import type { LlamaConfig } from './config.ts';
import { buildLinear, type WeightSource } from './weights.ts';

export class LlamaMLP extends Module {
  constructor(config: LlamaConfig, prefix: string, get: WeightSource) {
    super();
    const { hiddenSize: c, intermediateSize: f, mlpBias } = config;
    this.addChild('gate_proj', buildLinear(get, `${prefix}.gate_proj`, f, c, mlpBias));
    this.addChild('up_proj', buildLinear(get, `${prefix}.up_proj`, f, c, mlpBias));
    this.addChild('down_proj', buildLinear(get, `${prefix}.down_proj`, c, f, mlpBias));
  }

  get gateProj(): LinearLike { return this.child<LinearLike>('gate_proj'); }
  get upProj(): LinearLike { return this.child<LinearLike>('up_proj'); }
  get downProj(): LinearLike { return this.child<LinearLike>('down_proj'); }

  /** x `[B, T, hidden]` -> `[B, T, hidden]`. */
  forward(x: tf.Tensor3D, ctx?: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const g = this.gateProj.forward(x, ctx);
      const u = this.upProj.forward(x, ctx);
      const a = swiglu(g, u); // [B, T, intermediate]
      return this.downProj.forward(a, ctx) as tf.Tensor3D;
    });
  }
}

/**
 * `silu(gate) * up`, `silu(g) = g * sigmoid(g)`, differentiable in both. On the native path one
 * fused multi-threaded kernel each way (src/backend/layerKernels.ts) with the hand-written
 * gradient `dgate = da * up * s * (1 + g * (1 - s))`, `dup = da * silu(g)`; values equal the
 * tfjs-op version up to float rounding.
 */
export function swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  if (!nativeLayerKernelsActive()) return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [g, u] = args as tf.Tensor[];
    const save = args[2] as tf.GradSaveFunc;
    save([g, u]); // backward recomputes sigmoid(g)
    return {
      value: tf.engine().runKernel(SWIGLU, { gate: g, up: u }) as tf.Tensor,
      gradFunc: (da: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sg, su] = saved;
        return tf.engine().runKernel(SWIGLU_GRAD, { gate: sg, up: su, da: da as tf.Tensor }) as unknown as tf.Tensor[];
      },
    };
  }) as unknown as (g: tf.Tensor, u: tf.Tensor) => tf.Tensor;
  return f(gate, up);
}
