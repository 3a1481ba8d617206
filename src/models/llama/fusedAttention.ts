/**
 * Attention as one differentiable op on the native path (src/backend/attentionKernels.ts):
 * `softmax(q kᵀ + mask) v` per query head, grouped-query heads reading their key/value head, in
 * the `[B, T, heads, D]` layout the projections produce. Its gradient is the native backward,
 * which recomputes the probabilities from the saved per-row log-sum-exp, so the tape holds
 * q, k, v, the output and `[B, H, T]` numbers instead of `[B, H, T, S]` scores and
 * probabilities. Values equal the tfjs-op attention up to float rounding.
 */
import { tf } from '../../backend/tf.ts';
import { ATTENTION, ATTENTION_GRAD } from '../../backend/attentionKernels.ts';

/**
 * @param q `[B, T, H, D]` queries (rope applied, scaled by 1/sqrt(D))
 * @param k `[B, S, Hkv, D]` keys (rope applied), H a multiple of Hkv
 * @param v `[B, S, Hkv, D]` values
 * @param mask additive `[Bm, T, S]` (Bm 1 or B), or none when every key is visible
 * @returns `[B, T, H, D]`
 */
export function fusedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask?: tf.Tensor3D): tf.Tensor4D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qi, ki, vi] = args as tf.Tensor4D[];
    const save = args[3] as tf.GradSaveFunc;
    const out = tf.engine().runKernel(ATTENTION, { q: qi, k: ki, v: vi, ...(mask ? { mask } : {}) }) as tf.Tensor4D;
    save(mask ? [qi, ki, vi, out, mask] : [qi, ki, vi, out]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sq, sk, sv, so, sm] = saved;
        return tf.engine().runKernel(ATTENTION_GRAD, {
          q: sq, k: sk, v: sv, out: so, dout: dy as tf.Tensor, ...(sm ? { mask: sm } : {}),
        }) as unknown as tf.Tensor[];
      },
    };
  }) as unknown as (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D) => tf.Tensor4D;
  return f(q, k, v);
}
