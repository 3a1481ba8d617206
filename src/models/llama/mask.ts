/**
 * Position ids and the additive attention masks for a forward pass over `T` new tokens after
 * `past` cached ones, from an optional HF-style attention mask `[B, past + T]` (1 = token,
 * 0 = padding). Left and right padding are both handled: positions count real tokens only
 * (as HF's `generate` does for left padding) and padded keys are never attended. Sliding layers
 * see only the last `window` slots, as transformers' `sliding_window_overlay`
 * (`kv_idx > q_idx - window`, on slot indices, so left padding shifts nothing).
 */
import { tf } from '../../backend/tf.ts';
import type { LayerType, LlamaConfig } from './config.ts';

/** Large negative added to masked scores (finite: fully masked rows stay NaN-free). */
export const MASK_VALUE = -1e9;

/**
 * Position ids `[B, T]` int32: `cumsum(mask) - 1` (padding positions get 1, like HF), or
 * `past .. past + T - 1` without a mask.
 */
export function positionIdsFromMask(attentionMask: tf.Tensor2D | undefined, b: number, t: number, past: number): tf.Tensor2D {
  return tf.tidy(() => {
    if (!attentionMask) return tf.range(past, past + t, 1, 'int32').reshape([1, t]).tile([b, 1]) as tf.Tensor2D;
    const m = attentionMask.toFloat();
    const pos = tf.sub(tf.cumsum(m, 1), 1); // [B, S]
    const fixed = tf.add(tf.mul(pos, m), tf.sub(1, m)); // padding -> 1
    return fixed.slice([0, past], [b, t]).toInt() as tf.Tensor2D;
  });
}

/** Options of {@link buildAttentionMask}. */
export interface MaskOptions {
  /** Sliding window: query slot q sees key slots in (q - window, q]. */
  window?: number;
  /** Key slots before this one are not held (a KV cache that dropped them); keys are `kvOffset .. past + T - 1`. */
  kvOffset?: number;
}

/**
 * Additive mask `[B or 1, 1, 1, T, S]` over the held keys (`S = past + T - kvOffset`; 0 where key
 * j is visible from query i, else {@link MASK_VALUE}): causal (`j <= past + i`), within the window
 * if any and, with an attention mask, no padded keys. Returns undefined when every key is
 * visible (single-token step without padding, the window covering every held key).
 */
export function buildAttentionMask(
  attentionMask: tf.Tensor2D | undefined,
  b: number,
  t: number,
  past: number,
  opts: MaskOptions = {},
): tf.Tensor | undefined {
  const { window, kvOffset = 0 } = opts;
  if (!attentionMask && t === 1 && (window === undefined || kvOffset > past - window)) return undefined;
  return tf.tidy(() => {
    const s = past + t - kvOffset;
    const qi = tf.range(past, past + t, 1, 'int32').reshape([t, 1]);
    const kj = tf.range(kvOffset, past + t, 1, 'int32').reshape([1, s]);
    let allowed = tf.lessEqual(kj, qi); // [T, S]
    if (window !== undefined) allowed = tf.logicalAnd(allowed, tf.greater(kj, tf.sub(qi, window)));
    let allowedF = allowed.toFloat().reshape([1, t, s]); // [1, T, S]
    if (attentionMask) {
      const held = kvOffset > 0 ? attentionMask.slice([0, kvOffset], [b, s]) : attentionMask;
      allowedF = tf.mul(allowedF, held.toFloat().reshape([b, 1, s])); // [B, T, S]
    }
    const additive = tf.mul(tf.sub(1, allowedF), MASK_VALUE);
    return additive.reshape([allowedF.shape[0], 1, 1, t, s]);
  });
}

/**
 * One mask per layer type present in `config.layerTypes`, built once per forward.
 * `dropped(layer)`: key slots a KV cache no longer holds for that layer (0 without a cache).
 */
export function buildLayerMasks(
  config: Pick<LlamaConfig, 'layerTypes' | 'slidingWindow'>,
  attentionMask: tf.Tensor2D | undefined,
  b: number,
  t: number,
  past: number,
  dropped: (layer: number) => number = () => 0,
): Partial<Record<LayerType, tf.Tensor>> {
  const masks: Partial<Record<LayerType, tf.Tensor>> = {};
  for (const type of new Set(config.layerTypes)) {
    const window = type === 'sliding_attention' ? config.slidingWindow : undefined;
    masks[type] = buildAttentionMask(attentionMask, b, t, past, { window, kvOffset: dropped(config.layerTypes.indexOf(type)) });
  }
  return masks;
}
