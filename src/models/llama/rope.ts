/**
 * Rotary position embeddings, Hugging Face convention: the head dimension is split into two
 * halves (`rotate_half`), not interleaved pairs. Frequency scaling: `linear` and `llama3`.
 */
import { tf } from '../../backend/tf.ts';
import type { LlamaConfig } from './config.ts';

/**
 * Inverse frequencies `[headDim / 2]`, computed in float32 like HF
 * (`1 / theta^(2i/d)`), then scaled per `ropeScaling`.
 */
export function ropeInvFreq(config: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const d = config.headDim;
  const half = d / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.fround(Math.pow(config.ropeTheta, Math.fround((2 * i) / d)));
  const rs = config.ropeScaling;
  if (!rs) return inv;
  if (rs.type === 'linear') return inv.map((f) => f / rs.factor);
  // llama3: keep high frequencies, divide low frequencies by `factor`, interpolate between.
  const lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
  const highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / rs.factor;
    const smooth = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
    return (1 - smooth) * (f / rs.factor) + smooth * f;
  });
}

/** cos and sin tables `[B, T, 1, headDim]` for integer position ids `[B, T]`. */
export function ropeCosSin(invFreq: tf.Tensor1D, positionIds: tf.Tensor2D): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  return tf.tidy(() => {
    const [b, t] = positionIds.shape;
    const half = invFreq.shape[0];
    const freqs = tf.mul(positionIds.toFloat().reshape([b, t, 1]), invFreq.reshape([1, 1, half])); // [B, T, D/2]
    const emb = tf.concat([freqs, freqs], -1).reshape([b, t, 1, 2 * half]); // [B, T, 1, D]
    return { cos: tf.cos(emb) as tf.Tensor4D, sin: tf.sin(emb) as tf.Tensor4D };
  });
}

/** `x * cos + rotate_half(x) * sin` for x `[B, T, H, D]` and tables `[B, T, 1, D]`. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const half = x.shape[3] / 2;
    const [x1, x2] = tf.split(x, [half, half], 3);
    const rotated = tf.concat([tf.neg(x2), x1], 3); // rotate_half: [-x2, x1]
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
  });
}
