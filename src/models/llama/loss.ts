/** Causal language-model cross-entropy with HF's shift and ignore index. */
import { tf } from '../../backend/tf.ts';
import { nativeLossActive, XENT_BACKWARD, XENT_FORWARD } from '../../backend/lossKernels.ts';

/** Label value that contributes no loss (PyTorch's `ignore_index`). */
export const IGNORE_INDEX = -100;

/**
 * Cross-entropy of `logits[:, t]` against `labels[:, t + 1]` (HF shift), skipping labels equal
 * to {@link IGNORE_INDEX}. Returns the sum over counted tokens and their count.
 * @param logits `[B, T, V]`
 * @param labels `[B, T]` int32
 */
export function causalLmLossSum(logits: tf.Tensor3D, labels: tf.Tensor2D): { sum: tf.Scalar; count: tf.Scalar } {
  return tf.tidy(() => {
    const [b, t, v] = logits.shape;
    if (labels.shape[0] !== b || labels.shape[1] !== t) {
      throw new Error(`labels shape [${labels.shape}] does not match logits [${logits.shape}]`);
    }
    const n = b * (t - 1);
    if (n === 0) return { sum: tf.scalar(0), count: tf.scalar(0) };
    const lg = logits.slice([0, 0, 0], [b, t - 1, v]).reshape([n, v]); // [N, V]
    const lb = labels.slice([0, 1], [b, t - 1]).reshape([n]); // [N]
    const valid = tf.notEqual(lb, IGNORE_INDEX).toFloat(); // [N]
    const safe = tf.mul(lb, valid.toInt()) as tf.Tensor1D; // ignored -> 0
    const nll = crossEntropyRows(lg as tf.Tensor2D, safe); // [N]
    return { sum: tf.sum(tf.mul(nll, valid)), count: tf.sum(valid) };
  });
}

/**
 * Per-row `logsumexp(x) - x[label]` for logits `[N, V]` and labels `[N]` (each in `[0, V)`), with
 * a hand-written gradient `softmax(x) - onehot(label)`: tfjs's logSumExp gradient goes through a
 * broadcast Equal (the max's gradient) that took ~2 s for [512, 49152] on tfjs-wasm, and
 * tf.gather's gradient needs UnsortedSegmentSum, which tfjs-wasm lacks. On the native path both
 * directions are one fused multi-threaded kernel each (src/backend/lossKernels.ts); values
 * equal the tfjs-op version up to float rounding.
 */
export function crossEntropyRows(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return nativeLossActive() ? crossEntropyNative(logits, labels) : crossEntropyOps(logits, labels);
}

function crossEntropyOps(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const [n, v] = logits.shape;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const m = tf.max(x, -1, true); // [N, 1], a constant shift
    const lse = tf.add(tf.log(tf.sum(tf.exp(tf.sub(x, m)), -1, true)), m); // [N, 1]
    const flat = tf.add(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(v, 'int32')), labels);
    const picked = tf.gather(x.reshape([n * v]), flat); // [N]
    save([x, lse, labels]); // kept clones: `labels` itself dies with the caller's tidy
    return {
      value: tf.sub(lse.reshape([n]), picked) as tf.Tensor1D,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, slse, sl] = saved;
        const g = dy as tf.Tensor1D;
        const p = tf.exp(tf.sub(sx, slse)); // softmax [N, V]
        // wasm's float32 OneHot returns zeros: build int32 and cast.
        return [tf.mul(tf.sub(p, tf.oneHot(sl as tf.Tensor1D, v).toFloat()), g.reshape([n, 1]))];
      },
    };
  }) as unknown as (x: tf.Tensor2D) => tf.Tensor1D;
  return f(logits);
}

function crossEntropyNative(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const x = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const [loss, lse] = tf.engine().runKernel(XENT_FORWARD, { logits: x, labels }) as unknown as [tf.Tensor1D, tf.Tensor1D];
    save([x, lse, labels]);
    return {
      value: loss,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, slse, sl] = saved;
        return [tf.engine().runKernel(XENT_BACKWARD, { logits: sx, lse: slse, labels: sl, dy: dy as tf.Tensor }) as tf.Tensor];
      },
    };
  }) as unknown as (x: tf.Tensor2D) => tf.Tensor1D;
  return f(logits);
}

/** Mean causal-LM loss over counted tokens (0 when no token is counted). */
export function causalLmLoss(logits: tf.Tensor3D, labels: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const { sum, count } = causalLmLossSum(logits, labels);
    return tf.div(sum, tf.maximum(count, 1)) as tf.Scalar;
  });
}

/**
 * Labels with `labels[:, t + 1]` set to {@link IGNORE_INDEX} where `attentionMask[:, t]` is 0:
 * the logits that would predict them come from a padding position. Labels/mask `[B, T]`.
 */
export function maskUnpredictable(labels: tf.Tensor2D, attentionMask: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, t] = labels.shape;
    const m = attentionMask.slice([0, attentionMask.shape[1] - t], [b, t]).toInt(); // [B, T]
    const prev = tf.concat([tf.ones([b, 1], 'int32'), m.slice([0, 0], [b, t - 1])], 1); // mask of t - 1
    return tf.where(tf.equal(prev, 0), tf.fill([b, t], IGNORE_INDEX, 'int32'), labels) as tf.Tensor2D;
  });
}

/** Where the loss is counted: flat row `b * T + t` of the positions whose logits predict `labels[b, t + 1]`. */
export interface LabelledPositions {
  /** Flat indices into `[B * T]` of the predicting positions, in row-major order. */
  rows: Int32Array;
  /** The label each of those positions predicts. */
  targets: Int32Array;
}

/** The positions that {@link causalLmLossSum} counts, read on the host from labels `[B, T]`. */
export function labelledPositions(labels: Int32Array | number[], b: number, t: number): LabelledPositions {
  const rows: number[] = [];
  const targets: number[] = [];
  for (let i = 0; i < b; i++) {
    for (let j = 0; j + 1 < t; j++) {
      const y = labels[i * t + j + 1];
      if (y !== IGNORE_INDEX) {
        rows.push(i * t + j);
        targets.push(y);
      }
    }
  }
  return { rows: Int32Array.from(rows), targets: Int32Array.from(targets) };
}
