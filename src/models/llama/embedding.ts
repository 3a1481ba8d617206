/**
 * Token embedding (`embed_tokens`) and the tied output head: when `tie_word_embeddings` is
 * set, `lm_head` reads the embedding's `weight` instead of holding its own, so the shared
 * tensor is listed, trained, saved and disposed exactly once (under `model.embed_tokens`).
 */
import { tf } from '../../backend/tf.ts';
import { matMul } from '../../backend/matmul.ts';
import { Module } from '../../nn/module.ts';
import type { LinearLike } from '../../nn/linear.ts';
import type { ForwardContext } from '../../nn/context.ts';
import { projectFrozen, TransposeCache } from './frozenLinear.ts';
import { StoredWeight, storedGather, type FrozenWeight } from '../../backend/weightStore.ts';

export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;

  /** Takes ownership of `weight` `[vocab, hidden]` (a heap tensor or, frozen, a stored weight). */
  constructor(weight: FrozenWeight) {
    super();
    [this.numEmbeddings, this.embeddingDim] = weight.shape;
    this.addParam('weight', weight);
  }

  get weight(): FrozenWeight {
    return this.param<FrozenWeight>('weight');
  }

  /** ids `[B, T]` int32 -> `[B, T, hidden]`. */
  forward(ids: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, t] = ids.shape;
      const flat = ids.reshape([b * t]) as tf.Tensor1D;
      const w = this.weight;
      const rows = w instanceof StoredWeight ? storedGather(w, flat) : gatherRows(w, flat); // [B*T, hidden]
      return rows.reshape([b, t, this.embeddingDim]) as tf.Tensor3D;
    });
  }
}

/**
 * Output projection sharing an {@link Embedding}'s weight: `y = x E^T`. It has no parameter of
 * its own (the embedding owns the tensor), so a `replaceParam` on the embedding is seen here.
 */
export class TiedLinear extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private readonly embedding: Embedding;
  private readonly cache = new TransposeCache();

  constructor(embedding: Embedding) {
    super();
    this.embedding = embedding;
    this.inFeatures = embedding.embeddingDim;
    this.outFeatures = embedding.numEmbeddings;
  }

  /** The shared `[vocab, hidden]` tensor (owned by the embedding). */
  get weight(): FrozenWeight {
    return this.embedding.weight;
  }

  forward(x: tf.Tensor, _ctx?: ForwardContext): tf.Tensor {
    return projectFrozen(x, this.weight, this.cache) ?? matMul(x, this.weight as tf.Variable, false, true); // [..., vocab]
  }

  /** Free the cached transpose (the model's dispose calls this). */
  override releaseCaches(): void {
    this.cache.release();
  }
}

/**
 * `weight[ids]` with a gradient w.r.t. `weight` that works on the wasm backend (tf.gather's
 * built-in gradient needs UnsortedSegmentSum, which tfjs-wasm lacks): a scatter-add of the
 * row gradients (duplicate ids accumulate).
 */
export const gatherRows = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const weight = args[0] as tf.Tensor2D;
  const ids = args[1] as tf.Tensor1D;
  (args[2] as tf.GradSaveFunc)([ids]);
  return {
    value: tf.gather(weight, ids),
    gradFunc: (dy, saved) => {
      const [idx] = saved as tf.Tensor1D[];
      const dw = tf.scatterND(idx.reshape([idx.shape[0], 1]), dy as tf.Tensor2D, weight.shape);
      return [dw, tf.zerosLike(idx)];
    },
  };
}) as unknown as (weight: tf.Tensor2D, ids: tf.Tensor1D) => tf.Tensor2D;
