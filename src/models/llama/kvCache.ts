/**
 * Key/value cache for incremental decoding: per layer, keys and values of all tokens seen so
 * far, `[B, numKeyValueHeads, S, headDim]` (after rotary embedding). The cache owns its
 * tensors (kept outside any tidy); call {@link KVCache.dispose} when done.
 */
import { tf } from '../../backend/tf.ts';

export class KVCache {
  private readonly keys: (tf.Tensor4D | undefined)[];
  private readonly values: (tf.Tensor4D | undefined)[];

  constructor(readonly numLayers: number) {
    this.keys = new Array(numLayers).fill(undefined);
    this.values = new Array(numLayers).fill(undefined);
  }

  /** Number of cached positions (0 when empty). */
  get seqLen(): number {
    return this.keys[0]?.shape[2] ?? 0;
  }

  /**
   * Append this step's keys/values `[B, Hkv, T, D]` to layer `layer` and return the full
   * `[B, Hkv, S + T, D]` tensors (owned by the cache: do not dispose them).
   */
  update(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    const newK = tf.keep(oldK ? tf.concat([oldK, k], 2) : k.clone());
    const newV = tf.keep(oldV ? tf.concat([oldV, v], 2) : v.clone());
    oldK?.dispose();
    oldV?.dispose();
    this.keys[layer] = newK;
    this.values[layer] = newV;
    return { k: newK, v: newV };
  }

  /** Dispose every cached tensor; the cache is empty afterwards. */
  dispose(): void {
    for (let i = 0; i < this.numLayers; i++) {
      this.keys[i]?.dispose();
      this.values[i]?.dispose();
      this.keys[i] = undefined;
      this.values[i] = undefined;
    }
  }
}
