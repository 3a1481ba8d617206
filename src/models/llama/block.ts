/** One pre-norm decoder layer (`LlamaDecoderLayer`): x + attn(norm(x)), then x + mlp(norm(x)). */
import { tf } from '../../backend/tf.ts';
import { Module } from '../../nn/module.ts';
import type { LlamaConfig } from './config.ts';
import { LlamaAttention, type AttentionInputs } from './attention.ts';
import { LlamaMLP } from './mlp.ts';
import { RMSNorm } from './rmsnorm.ts';
import type { WeightSource } from './weights.ts';

export class LlamaDecoderLayer extends Module {
  constructor(config: LlamaConfig, layerIdx: number, prefix: string, get: WeightSource) {
    super();
    const c = config.hiddenSize;
    this.addChild('self_attn', new LlamaAttention(config, layerIdx, `${prefix}.self_attn`, get));
    this.addChild('mlp', new LlamaMLP(config, `${prefix}.mlp`, get));
    this.addChild('input_layernorm', new RMSNorm(get(`${prefix}.input_layernorm.weight`, [c], 'norm') as tf.Tensor1D, config.rmsNormEps));
    this.addChild(
      'post_attention_layernorm',
      new RMSNorm(get(`${prefix}.post_attention_layernorm.weight`, [c], 'norm') as tf.Tensor1D, config.rmsNormEps),
    );
  }

  get selfAttn(): LlamaAttention { return this.child<LlamaAttention>('self_attn'); }
  get mlp(): LlamaMLP { return this.child<LlamaMLP>('mlp'); }
  get inputLayernorm(): RMSNorm { return this.child<RMSNorm>('input_layernorm'); }
  get postAttentionLayernorm(): RMSNorm { return this.child<RMSNorm>('post_attention_layernorm'); }

  /** x `[B, T, hidden]` -> `[B, T, hidden]`. */
  forward(x: tf.Tensor3D, inp: AttentionInputs): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.selfAttn.forward(this.inputLayernorm.forward(x) as tf.Tensor3D, inp)) as tf.Tensor3D;
      return tf.add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h) as tf.Tensor3D, inp.ctx)) as tf.Tensor3D;
    });
  }
}

/** Children named `0`, `1`, ... like `nn.ModuleList`, so paths read `model.layers.3.mlp`. */
export class ModuleList<M extends Module> extends Module {
  private readonly items: M[] = [];

  constructor(items: M[]) {
    super();
    items.forEach((m, i) => this.addChild(String(i), m));
    this.items = items;
  }

  get length(): number {
    return this.items.length;
  }

  /** Item `i` (reads the registered child, so replaceChild is honoured). */
  at(i: number): M {
    return this.child<M>(String(i));
  }
}
