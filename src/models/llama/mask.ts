/**
 * Position ids and the additive attention mask for a forward pass over `T` new tokens after
 * `past` cached ones, from an optional HF-style attention mask `[B, past + T]` (1 = token,
 * 0 = padding). Left and right padding are both handled: positions count real tokens only
 * (as HF's `generate` does for left padding) and padded keys are never attended.
 */
import { tf } from '../../backend/tf.ts';

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

/**
 * Additive mask `[B or 1, 1, 1, T, S]` (0 where key j is visible from query i, else
 * {@link MASK_VALUE}): causal (`j <= past + i`) and, with an attention mask, no padded keys.
 * Returns undefined when every key is visible (single-token step without padding).
 */
export function buildAttentionMask(attentionMask: tf.Tensor2D | undefined, b: number, t: number, past: number): tf.Tensor | undefined {
  if (!attentionMask && t === 1) return undefined;
  return tf.tidy(() => {
    const s = past + t;
    const qi = tf.range(past, s, 1, 'int32').reshape([t, 1]);
    const kj = tf.range(0, s, 1, 'int32').reshape([1, s]);
    let allowed = tf.lessEqual(kj, qi).toFloat().reshape([1, t, s]); // [1, T, S]
    if (attentionMask) allowed = tf.mul(allowed, attentionMask.toFloat().reshape([b, 1, s])); // [B, T, S]
    const additive = tf.mul(tf.sub(1, allowed), MASK_VALUE);
    return additive.reshape([allowed.shape[0], 1, 1, t, s]);
  });
}
