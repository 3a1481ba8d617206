/**
 * Key/value cache for incremental decoding: per layer, keys and values (after rotary embedding)
 * in one of two layouts, fixed by the first append: `[B, numKeyValueHeads, S, headDim]` through
 * {@link KVCache.update} (the tfjs-op attention's), or `[B, S, numKeyValueHeads, headDim]` through
 * {@link KVCache.updateTokens} (the projections' own layout, which the native fused attention
 * reads: no transposes of keys and values at each decoding step). A sliding-window layer keeps
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
  /** Axis of the positions in the held tensors: 2 (`update`) or 1 (`updateTokens`); unset while empty. */
  private axis?: 1 | 2;

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
    return this.seen[layer] - this.heldLength(layer);
  }

  /** Positions held for layer `layer`. */
  heldLength(layer: number): number {
    return this.keys[layer]?.shape[this.axis ?? 2] ?? 0;
  }

  /**
   * Append this step's keys/values `[B, Hkv, T, D]` to layer `layer` and return the keys/values
   * to attend to, `[B, Hkv, held + T, D]`. They are owned by the cache, except when a window
   * drops positions: then the cache keeps a trimmed copy and the returned tensors belong to the
   * caller's tidy scope (call this inside one).
   */
  update(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    return this.append(layer, k, v, 2);
  }

  /**
   * {@link KVCache.update} in the `[B, T, Hkv, D]` layout: append this step's keys/values and
   * return `[B, held + T, Hkv, D]`, with the same ownership rules. A cache takes one layout.
   */
  updateTokens(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    return this.append(layer, k, v, 1);
  }

  private append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D, axis: 1 | 2): { k: tf.Tensor4D; v: tf.Tensor4D } {
    if (this.axis !== undefined && this.axis !== axis) {
      throw new Error(`KVCache holds keys with positions on axis ${this.axis}; cannot append on axis ${axis}`);
    }
    this.axis = axis;
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    const fullK = oldK ? tf.concat([oldK, k], axis) : k.clone();
    const fullV = oldV ? tf.concat([oldV, v], axis) : v.clone();
    oldK?.dispose();
    oldV?.dispose();
    this.seen[layer] += k.shape[axis];
    const window = this.windows[layer];
    const len = fullK.shape[axis];
    // A query at slot q sees keys in (q - window, q]: the next one needs the last window - 1.
    const keep = window === undefined ? len : Math.min(len, Math.max(window - 1, 0));
    if (keep === len) {
      this.keys[layer] = tf.keep(fullK);
      this.values[layer] = tf.keep(fullV);
    } else {
      const begin = [0, 0, 0, 0];
      begin[axis] = len - keep;
      const size = [...fullK.shape];
      size[axis] = keep;
      this.keys[layer] = tf.keep(fullK.slice(begin, size));
      this.values[layer] = tf.keep(fullV.slice(begin, size));
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
    this.axis = undefined;
  }
}
