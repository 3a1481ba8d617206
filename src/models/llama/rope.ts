/**
 * Rotary position embeddings, Hugging Face convention: the head dimension is split into two
 * halves (`rotate_half`), not interleaved pairs. Frequencies follow transformers 5.17's
 * `ROPE_INIT_FUNCTIONS` for each rope type (default, linear, dynamic, llama3, yarn), in float32
 * where transformers computes in float32 tensors and in float64 where it uses Python floats.
 */
import { tf } from '../../backend/tf.ts';
import { nativeLayerKernelsActive, ROPE, ROPE_GRAD } from '../../backend/layerKernels.ts';
import type { LlamaConfig, RopeScaling } from './config.ts';

type RopeConfig = Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling' | 'maxPositionEmbeddings'>;

/** Inverse frequencies `[headDim / 2]` and the factor that multiplies cos and sin (yarn). */
export interface RopeFrequencies {
  invFreq: Float32Array;
  attentionScaling: number;
}

const f32 = Math.fround;

/** `1 / base^(2i / d)` in float32, as `1.0 / (base ** (torch.arange(0, d, 2).float() / d))`. */
function baseInvFreq(base: number, d: number): Float32Array {
  const inv = new Float32Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = f32(1 / f32(Math.pow(base, f32((2 * i) / d))));
  return inv;
}

/**
 * Frequencies for a forward pass whose longest position is `seqLen - 1`. Only `dynamic` depends
 * on `seqLen`: past `maxPositionEmbeddings` it stretches the base (NTK), as transformers'
 * `dynamic_rope_update` does for every call of a freshly loaded model (transformers also keeps
 * the largest frequencies seen across calls until a short call resets them; we compute each
 * call from its own positions, which is the same during one generation, where lengths only grow).
 */
export function ropeFrequencies(config: RopeConfig, seqLen?: number): RopeFrequencies {
  const d = config.headDim;
  const rs = config.ropeScaling;
  if (!rs) return { invFreq: baseInvFreq(config.ropeTheta, d), attentionScaling: 1 };
  return ROPE_TYPES[rs.type](config, rs as never, seqLen);
}

type RopeInit<T extends RopeScaling['type']> = (
  config: RopeConfig,
  rs: Extract<RopeScaling, { type: T }>,
  seqLen?: number,
) => RopeFrequencies;

/** One entry per rope type (`_compute_*_parameters` in transformers' modeling_rope_utils.py). */
const ROPE_TYPES: { [T in RopeScaling['type']]: RopeInit<T> } = {
  linear: (c, rs) => ({ invFreq: baseInvFreq(c.ropeTheta, c.headDim).map((f) => f32(f / rs.factor)), attentionScaling: 1 }),

  dynamic: (c, rs, seqLen) => {
    const d = c.headDim;
    const maxPos = c.maxPositionEmbeddings;
    if (seqLen === undefined || seqLen <= maxPos) return { invFreq: baseInvFreq(c.ropeTheta, d), attentionScaling: 1 };
    // base * ((factor * seq_len / max_pos) - (factor - 1)) ** (d / (d - 2)), on float32 tensors.
    const stretch = f32(f32(f32(f32(rs.factor) * seqLen) / maxPos) - f32(rs.factor - 1));
    const base = f32(f32(c.ropeTheta) * f32(Math.pow(stretch, d / (d - 2))));
    return { invFreq: baseInvFreq(base, d), attentionScaling: 1 };
  },

  llama3: (c, rs) => {
    // Keep high frequencies, divide low frequencies by `factor`, interpolate between.
    const inv = baseInvFreq(c.ropeTheta, c.headDim);
    const lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
    const highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
    const invFreq = inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f;
      if (wavelen > lowWavelen) return f / rs.factor;
      const smooth = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
      return (1 - smooth) * (f / rs.factor) + smooth * f;
    });
    return { invFreq, attentionScaling: 1 };
  },

  yarn: (c, rs) => {
    const d = c.headDim;
    const base = c.ropeTheta;
    const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
    // transformers tests these for truthiness (`x or default`, `if mscale and mscale_all_dim`): 0 means unset.
    const attentionScaling =
      rs.attentionFactor ?? (rs.mscale && rs.mscaleAllDim ? mscale(rs.factor, rs.mscale) / mscale(rs.factor, rs.mscaleAllDim) : mscale(rs.factor));
    const betaFast = rs.betaFast || 32;
    const betaSlow = rs.betaSlow || 1;
    // Dimension at which a frequency completes `rotations` turns over the original context.
    const correctionDim = (rotations: number) =>
      (d * Math.log(rs.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
    let low = correctionDim(betaFast);
    let high = correctionDim(betaSlow);
    if (rs.truncate ?? true) {
      low = Math.floor(low);
      high = Math.ceil(high);
    }
    low = Math.max(low, 0);
    high = Math.min(high, d - 1);
    if (low === high) high += 0.001; // as transformers: avoid a zero-width ramp
    const half = d / 2;
    const invFreq = new Float32Array(half);
    for (let i = 0; i < half; i++) {
      const pos = f32(Math.pow(base, f32((2 * i) / d)));
      const extrapolation = f32(1 / pos);
      const interpolation = f32(1 / f32(rs.factor * pos));
      const ramp = Math.min(Math.max(f32(f32(i - f32(low)) / f32(high - low)), 0), 1); // float32 arange minus Python floats
      const extrapolationFactor = f32(1 - ramp);
      invFreq[i] = f32(f32(interpolation * f32(1 - extrapolationFactor)) + f32(extrapolation * extrapolationFactor));
    }
    return { invFreq, attentionScaling };
  },
};

/** Inverse frequencies `[headDim / 2]` at the model's own length (tests; see {@link ropeFrequencies}). */
export function ropeInvFreq(config: RopeConfig): Float32Array {
  return ropeFrequencies(config).invFreq;
}

/**
 * cos and sin tables `[B, T, 1, headDim]` for integer position ids `[B, T]`, multiplied by
 * `attentionScaling` (yarn), as transformers' rotary embedding returns them.
 */
export function ropeCosSin(invFreq: tf.Tensor1D, positionIds: tf.Tensor2D, attentionScaling = 1): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
  return tf.tidy(() => {
    const [b, t] = positionIds.shape;
    const half = invFreq.shape[0];
    const freqs = tf.mul(positionIds.toFloat().reshape([b, t, 1]), invFreq.reshape([1, 1, half])); // [B, T, D/2]
    const emb = tf.concat([freqs, freqs], -1).reshape([b, t, 1, 2 * half]); // [B, T, 1, D]
    if (attentionScaling === 1) return { cos: tf.cos(emb) as tf.Tensor4D, sin: tf.sin(emb) as tf.Tensor4D };
    return { cos: tf.mul(tf.cos(emb), attentionScaling) as tf.Tensor4D, sin: tf.mul(tf.sin(emb), attentionScaling) as tf.Tensor4D };
  });
}

/**
 * The rotary tables of a model for one forward pass. Static rope types compute their
 * frequencies once; `dynamic` recomputes them from the call's longest position
 * (`max(positionIds) + 1`, over the batch, as transformers does).
 */
export class RotaryEmbedding {
  private readonly fixed?: RopeFrequencies;

  constructor(private readonly config: RopeConfig) {
    if (config.ropeScaling?.type !== 'dynamic') this.fixed = ropeFrequencies(config);
  }

  /** cos and sin `[B, T, 1, headDim]` for position ids `[B, T]`. */
  cosSin(positionIds: tf.Tensor2D): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
    return tf.tidy(() => {
      const fr = this.fixed ?? ropeFrequencies(this.config, tf.max(positionIds).dataSync()[0] + 1);
      return ropeCosSin(tf.tensor1d(fr.invFreq), positionIds, fr.attentionScaling);
    });
  }
}

/**
 * `(x * cos + rotate_half(x) * sin) * scale` for x `[B, T, H, D]` and tables `[B, T, 1, D]`,
 * differentiable in x (the tables are constants; `scale` lets attention fold its `1 / sqrt(D)`
 * into the queries). On the native path one fused multi-threaded kernel each way
 * (src/backend/layerKernels.ts), the gradient `(dy * cos + rotate_half^T(dy * sin)) * scale`;
 * tables of another shape (broadcast over the batch) take the tfjs ops. Values equal up to
 * float rounding.
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D, scale = 1): tf.Tensor4D {
  const [b, t, , d] = x.shape;
  const tables = [b, t, 1, d];
  const fits = (c: tf.Tensor) => c.shape.every((n, i) => n === tables[i]);
  return nativeLayerKernelsActive() && fits(cos) && fits(sin) ? applyRopeNative(x, cos, sin, scale) : applyRopeOps(x, cos, sin, scale);
}

function applyRopeOps(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D, scale: number): tf.Tensor4D {
  return tf.tidy(() => {
    const half = x.shape[3] / 2;
    const [x1, x2] = tf.split(x, [half, half], 3);
    const rotated = tf.concat([tf.neg(x2), x1], 3); // rotate_half: [-x2, x1]
    const y = tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
    return scale === 1 ? y : (tf.mul(y, scale) as tf.Tensor4D);
  });
}

function applyRopeNative(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D, scale: number): tf.Tensor4D {
  // cos and sin are closure values, not customGrad inputs: no gradient flows to them. They are
  // saved (kept clones) because the caller's tidy may dispose them before backward runs.
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    const save = args[1] as tf.GradSaveFunc;
    save([cos, sin]);
    return {
      value: tf.engine().runKernel(ROPE, { x: xi, cos, sin }, { scale }) as tf.Tensor4D,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sc, ss] = saved;
        return [tf.engine().runKernel(ROPE_GRAD, { dy: dy as tf.Tensor, cos: sc, sin: ss }, { scale }) as tf.Tensor];
      },
    };
  }) as unknown as (x: tf.Tensor4D) => tf.Tensor4D;
  return f(x);
}
