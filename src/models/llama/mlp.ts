/** SwiGLU feed-forward (`LlamaMLP`): `down(silu(gate(x)) * up(x))`. */
import { tf } from '../../backend/tf.ts';
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
      const a = tf.mul(tf.mul(g, tf.sigmoid(g)), u); // silu(g) * u, [B, T, intermediate]
      return this.downProj.forward(a, ctx) as tf.Tensor3D;
    });
  }
}
