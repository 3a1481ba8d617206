/**
 * The project matmul: `op(a) · op(b)` where `op` optionally transposes the last two dims.
 *
 * Why not `tf.matMul` directly: on tfjs-wasm 4.22 a matmul with `transposeA`/`transposeB`
 * leaves the XNNPACK fast path (5–40x slower), and tf.matMul's built-in gradient uses
 * exactly those flags; batched matmuls with batch > 1 are also slow (FACTS.md). So:
 *  - 2-D products go through a custom gradient whose backward products are again
 *    project matmuls; on the pure-wasm path transposes are explicit copies, with the
 *    native BLAS kernel they are free flags of `cblas_sgemm`;
 *  - `[..., M, K] x [K, N]` is folded into one 2-D product;
 *  - true batched products (attention) run as per-slice 2-D products.
 */
import { tf } from './tf.ts';

/** True when the active BatchMatMul kernel handles transpose flags at full speed. */
let nativeTranspose = false;

/** Called by the BLAS kernel registration: transposes become free flags. */
export function setNativeTranspose(on: boolean): void {
  nativeTranspose = on;
}

/** Plain 2-D product on the active kernel, never using the slow wasm transpose flags. */
function rawMatMul2d(a: tf.Tensor2D, b: tf.Tensor2D, tA: boolean, tB: boolean): tf.Tensor2D {
  if (nativeTranspose) return tf.matMul(a, b, tA, tB);
  return tf.tidy(() => tf.matMul(tA ? tf.transpose(a) : a, tB ? tf.transpose(b) : b));
}

type Mm2d = (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

function makeMatMul2d(tA: boolean, tB: boolean): Mm2d {
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const A = args[0] as tf.Tensor2D;
    const B = args[1] as tf.Tensor2D;
    (args[2] as tf.GradSaveFunc)([A, B]);
    return {
      value: rawMatMul2d(A, B, tA, tB),
      gradFunc: (dy, saved) => {
        const [sa, sb] = saved as tf.Tensor2D[];
        const g = dy as tf.Tensor2D;
        // Gradients of C = op(A) op(B), each again a project matmul (explicit transposes).
        if (!tA && !tB) return [matMul2d(g, sb, false, true), matMul2d(sa, g, true, false)];
        if (!tA && tB) return [matMul2d(g, sb, false, false), matMul2d(g, sa, true, false)];
        if (tA && !tB) return [matMul2d(sb, g, false, true), matMul2d(sa, g, false, false)];
        return [matMul2d(sb, g, true, true), matMul2d(g, sa, true, true)];
      },
    };
  }) as unknown as Mm2d;
}

const kernels: Record<string, Mm2d> = {
  ff: makeMatMul2d(false, false),
  ft: makeMatMul2d(false, true),
  tf: makeMatMul2d(true, false),
  tt: makeMatMul2d(true, true),
};

/** 2-D project matmul with a fast custom gradient. */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  const key = (transposeA ? 't' : 'f') + (transposeB ? 't' : 'f');
  return kernels[key](a, b);
}

/**
 * `op(a) · op(b)` for rank >= 2 operands, differentiable.
 * Shapes: a `[...batch, M, K]` (or `[..., K, M]` with transposeA), b `[...batch, K, N]`
 * (or `[..., N, K]`), or b 2-D shared across a's batch. Batch dims must match exactly
 * (or b's all be 1).
 */
export function matMul(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(`matMul needs rank >= 2 operands, got [${a.shape}] and [${b.shape}]`);
  }
  return tf.tidy(() => {
    if (a.rank === 2 && b.rank === 2) return matMul2d(a as tf.Tensor2D, b as tf.Tensor2D, transposeA, transposeB);
    const bBatch = b.shape.slice(0, -2);
    if (b.rank > 2 && bBatch.every((d) => d === 1)) {
      b = b.reshape(b.shape.slice(-2));
    }
    const aBatch = a.shape.slice(0, -2);
    const m = a.shape[a.rank - 2];
    const k = a.shape[a.rank - 1];
    if (b.rank === 2) {
      if (!transposeA) {
        // Fold [...batch, M, K] into [batch*M, K]: one 2-D product.
        const rows = a.size / k;
        const out = matMul2d(a.reshape([rows, k]), b as tf.Tensor2D, false, transposeB);
        return out.reshape([...aBatch, m, out.shape[1]]);
      }
      const slices = sliceBatch(a);
      return tf.stack(slices.map((s) => matMul2d(s, b as tf.Tensor2D, true, transposeB))).reshape(
        [...aBatch, k, b.shape[transposeB ? 0 : 1]] as number[],
      );
    }
    if (a.rank === 2) {
      const slices = sliceBatch(b);
      const outs = slices.map((s) => matMul2d(a as tf.Tensor2D, s, transposeA, transposeB));
      return tf.stack(outs).reshape([...bBatch, outs[0].shape[0], outs[0].shape[1]]);
    }
    if (aBatch.length !== bBatch.length || aBatch.some((d, i) => d !== bBatch[i])) {
      throw new Error(`matMul batch dims differ: [${a.shape}] x [${b.shape}]`);
    }
    const as = sliceBatch(a);
    const bs = sliceBatch(b);
    const outs = as.map((s, i) => matMul2d(s, bs[i], transposeA, transposeB));
    return tf.stack(outs).reshape([...aBatch, outs[0].shape[0], outs[0].shape[1]]);
  });
}

/** `[...batch, R, C]` -> list of `[R, C]` slices (differentiable). */
function sliceBatch(x: tf.Tensor): tf.Tensor2D[] {
  const r = x.shape[x.rank - 2];
  const c = x.shape[x.rank - 1];
  const n = x.size / (r * c);
  return tf.unstack(x.reshape([n, r, c])) as tf.Tensor2D[];
}
