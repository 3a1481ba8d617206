/**
 * Key/value cache for incremental decoding: per layer, keys and values
 * `[B, numKeyValueHeads, S, headDim]` (after rotary embedding). A sliding-window layer keeps
 * only its last `window - 1` positions (what the next query can still see, like transformers'
 * `DynamicSlidingWindowLayer`), so its memory is bounded by the window; full layers keep
 * everything. The cache owns its tensors (kept outside any tidy); call {@link KVCache.dispose}.
 */
import { tf } from '../../backend/tf.ts';
import type { LlamaConfig } from './config.ts';

export class KVCache {
  private readonly keys: (tf.Tensor4D | undefined)[];
  private readonly values: (tf.Tensor4D | undefined)[];
  /** Positions seen per layer (held or dropped). */
  private readonly seen: number[];

  /**
   * @param windows per layer, the sliding window of that layer or undefined (keep everything);
   *   default: no windows. Use {@link KVCache.forConfig} to follow a model's layer types.
   */
  constructor(readonly numLayers: number, private readonly windows: (number | undefined)[] = []) {
    this.keys = new Array(numLayers).fill(undefined);
    this.values = new Array(numLayers).fill(undefined);
    this.seen = new Array(numLayers).fill(0);
  }

  /** A cache whose sliding layers keep only their window. */
  static forConfig(config: Pick<LlamaConfig, 'numHiddenLayers' | 'layerTypes' | 'slidingWindow'>): KVCache {
    return new KVCache(
      config.numHiddenLayers,
      config.layerTypes.map((t) => (t === 'sliding_attention' ? config.slidingWindow : undefined)),
    );
  }

  /** Number of positions seen so far (0 when empty), held or not. */
  get seqLen(): number {
    return this.seen[0] ?? 0;
  }

  /** Positions of layer `layer` no longer held: its keys start at this slot. */
  dropped(layer: number): number {
    return this.seen[layer] - (this.keys[layer]?.shape[2] ?? 0);
  }

  /** Positions held for layer `layer`. */
  heldLength(layer: number): number {
    return this.keys[layer]?.shape[2] ?? 0;
  }

  /**
   * Append this step's keys/values `[B, Hkv, T, D]` to layer `layer` and return the keys/values
   * to attend to, `[B, Hkv, held + T, D]`. They are owned by the cache, except when a window
   * drops positions: then the cache keeps a trimmed copy and the returned tensors belong to the
   * caller's tidy scope (call this inside one).
   */
  update(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    const fullK = oldK ? tf.concat([oldK, k], 2) : k.clone(); // [B, Hkv, held + T, D]
    const fullV = oldV ? tf.concat([oldV, v], 2) : v.clone();
    oldK?.dispose();
    oldV?.dispose();
    this.seen[layer] += k.shape[2];
    const window = this.windows[layer];
    const len = fullK.shape[2];
    // A query at slot q sees keys in (q - window, q]: the next one needs the last window - 1.
    const keep = window === undefined ? len : Math.min(len, Math.max(window - 1, 0));
    if (keep === len) {
      this.keys[layer] = tf.keep(fullK);
      this.values[layer] = tf.keep(fullV);
    } else {
      const [b, h, , d] = fullK.shape;
      this.keys[layer] = tf.keep(fullK.slice([0, 0, len - keep, 0], [b, h, keep, d]));
      this.values[layer] = tf.keep(fullV.slice([0, 0, len - keep, 0], [b, h, keep, d]));
    }
    return { k: fullK, v: fullV };
  }

  /** Dispose every cached tensor; the cache is empty afterwards. */
  dispose(): void {
    for (let i = 0; i < this.numLayers; i++) {
      this.keys[i]?.dispose();
      this.values[i]?.dispose();
      this.keys[i] = undefined;
      this.values[i] = undefined;
      this.seen[i] = 0;
    }
  }
}
