/**
 * The project matmul: `op(a) · op(b)` where `op` optionally transposes the last two dims.
 *
 * Why not `tf.matMul` directly: on tfjs-wasm 4.22 a matmul with `transposeA`/`transposeB`
 * leaves the XNNPACK fast path (5–40x slower), and tf.matMul's built-in gradient uses
 * exactly those flags; batched matmuls with batch > 1 are also slow (docs/backend.md). So:
 *  - every product goes through one differentiable op whose backward products are again
 *    project matmuls. On the pure-wasm path transposes are explicit copies of the smaller
 *    side (x·Wᵀ is computed as (W·xᵀ)ᵀ when x is smaller than W); with the native BLAS
 *    kernel (blas.ts) they are free flags of `cblas_sgemm`;
 *  - gradients are computed lazily, per input: backprop only asks for the inputs that lead
 *    to a watched variable, so a frozen base weight costs no weight-gradient product (half
 *    of the backward products of every frozen linear layer in PEFT);
 *  - `[..., M, K] x [K, N]` (and `x [N, K]` transposed) is folded into one 2-D product;
 *  - true batched products (attention `[B, H, T, D]`) run in one BLAS call looping over the
 *    batch in C, or as per-slice 2-D products on pure wasm.
 */
import { tf } from './tf.ts';
import { state } from './state.ts';

type Mat = tf.Tensor2D | tf.Tensor3D;

/**
 * The private engine entry tf.customGrad is built on; used for lazy per-input gradients and for
 * ops with several outputs (the backward then gets one gradient per output, zeros for unused ones).
 */
export interface EngineWithKernelFunc {
  runKernelFunc<T extends tf.Tensor | tf.Tensor[]>(params: {
    forwardFunc: (backend: unknown, save: tf.GradSaveFunc) => T;
    backwardsFunc: (dy: T, saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;
    inputs: Record<string, tf.Tensor>;
  }): T;
}

/** Swap the last two dims (an explicit copy). */
function swapLast(x: Mat): Mat {
  return (x.rank === 2 ? tf.transpose(x) : tf.transpose(x, [0, 2, 1])) as Mat;
}

/**
 * Forward product without gradient. a, b: both rank 2, or both rank 3 with batch sizes
 * `na, nb` each 1 or n (a batch of 1 is shared).
 */
function forward(a: Mat, b: Mat, tA: boolean, tB: boolean): Mat {
  // The BLAS kernel takes transpose flags and batches at full speed.
  if (state.blas) return tf.matMul(a, b, tA, tB) as Mat;
  // Pure wasm: only the plain, unbatched XNNPACK product is fast, so transposes are explicit
  // copies. Copy whichever is smaller: the flagged operands, or (computing Cᵀ = op(B)ᵀ op(A)ᵀ)
  // the unflagged operands plus the output. E.g. x·Wᵀ with a big W copies x and C, not W.
  const m = a.shape[a.rank - (tA ? 1 : 2)];
  const n = b.shape[b.rank - (tB ? 2 : 1)];
  const outSize = m * n * (a.rank === 3 ? Math.max(a.shape[0], b.shape[0]) : 1);
  const direct = (tA ? a.size : 0) + (tB ? b.size : 0);
  const flipped = (tA ? 0 : a.size) + (tB ? 0 : b.size) + outSize;
  if (flipped < direct) return swapLast(plainProduct(tB ? b : swapLast(b), tA ? a : swapLast(a)));
  return plainProduct(tA ? swapLast(a) : a, tB ? swapLast(b) : b);
}

/** `A B` without flags on pure wasm: one 2-D product, or per-slice 2-D products for batches. */
function plainProduct(A: Mat, B: Mat): Mat {
  if (A.rank === 2) return tf.matMul(A as tf.Tensor2D, B as tf.Tensor2D);
  const na = A.shape[0];
  const nb = B.shape[0];
  if (na === 1 && nb === 1) return tf.matMul(A.squeeze([0]) as tf.Tensor2D, B.squeeze([0]) as tf.Tensor2D).expandDims(0) as tf.Tensor3D;
  const n = Math.max(na, nb);
  if (n === 0) return tf.zeros([0, A.shape[1], B.shape[2] as number]) as tf.Tensor3D;
  const as = na === 1 ? [] : tf.unstack(A);
  const bs = nb === 1 ? [] : tf.unstack(B);
  const a0 = na === 1 ? A.squeeze([0]) : undefined;
  const b0 = nb === 1 ? B.squeeze([0]) : undefined;
  const outs: tf.Tensor2D[] = [];
  for (let i = 0; i < n; i++) outs.push(tf.matMul((a0 ?? as[i]) as tf.Tensor2D, (b0 ?? bs[i]) as tf.Tensor2D));
  return tf.stack(outs) as tf.Tensor3D; // [n, M, N]
}

/** Reduce a batched gradient to the shape of an operand shared across the batch. */
function unbroadcast(g: Mat, like: tf.Tensor): Mat {
  return g.rank === 3 && like.shape[0] === 1 && g.shape[0] !== 1 ? (g.sum(0, true) as Mat) : g;
}

/**
 * Differentiable `op(a) op(b)` (same rank, 2 or 3). Each input's gradient is a thunk the
 * engine calls only when that input needs a gradient.
 */
function product(a: Mat, b: Mat, tA: boolean, tB: boolean): Mat {
  const engine = tf.engine() as unknown as EngineWithKernelFunc;
  return engine.runKernelFunc({
    inputs: { a, b },
    forwardFunc: (_backend, save) => {
      save([a, b]);
      return forward(a, b, tA, tB);
    },
    backwardsFunc: (dy, saved) => {
      const [sa, sb] = saved as Mat[];
      const g = dy as Mat;
      // C = op(A) op(B): each gradient is again one project product with flags.
      if (!tA && !tB) {
        return { a: () => unbroadcast(product(g, sb, false, true), sa), b: () => unbroadcast(product(sa, g, true, false), sb) };
      }
      if (!tA && tB) {
        return { a: () => unbroadcast(product(g, sb, false, false), sa), b: () => unbroadcast(product(g, sa, true, false), sb) };
      }
      if (tA && !tB) {
        return { a: () => unbroadcast(product(sb, g, false, true), sa), b: () => unbroadcast(product(sa, g, false, false), sb) };
      }
      return { a: () => unbroadcast(product(sb, g, true, true), sa), b: () => unbroadcast(product(g, sa, true, true), sb) };
    },
  }) as Mat;
}

function checkInner(aShape: number[], bShape: number[], tA: boolean, tB: boolean): void {
  const k = aShape[aShape.length - (tA ? 2 : 1)];
  const kb = bShape[bShape.length - (tB ? 1 : 2)];
  if (k !== kb) {
    throw new Error(`matMul inner dims differ: [${aShape}]${tA ? 'ᵀ' : ''} x [${bShape}]${tB ? 'ᵀ' : ''} (${k} vs ${kb})`);
  }
}

/** 2-D project matmul `op(a) op(b)` with a fast, lazy custom gradient. */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  if (a.rank !== 2 || b.rank !== 2) throw new Error(`matMul2d needs 2-D operands, got [${a.shape}] and [${b.shape}]`);
  checkInner(a.shape, b.shape, transposeA, transposeB);
  return product(a, b, transposeA, transposeB) as tf.Tensor2D;
}

/**
 * `op(a) · op(b)` for rank >= 2 operands, differentiable.
 * Shapes: a `[...batchA, M, K]` (`[..., K, M]` with transposeA), b `[...batchB, K, N]`
 * (`[..., N, K]` with transposeB); batch dims broadcast as in tf.matMul (a 2-D b is shared
 * by every slice of a). Output `[...broadcast(batchA, batchB), M, N]`.
 */
export function matMul(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(`matMul needs rank >= 2 operands, got [${a.shape}] and [${b.shape}]`);
  }
  checkInner(a.shape, b.shape, transposeA, transposeB);
  if (a.rank === 2 && b.rank === 2) return product(a as tf.Tensor2D, b as tf.Tensor2D, transposeA, transposeB);
  return tf.tidy(() => {
    const aBatch = a.shape.slice(0, -2);
    const bBatch = b.shape.slice(0, -2);
    const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(aBatch, bBatch);
    const [ar, ac] = a.shape.slice(-2);
    const [br, bc] = b.shape.slice(-2);
    const m = transposeA ? ac : ar;
    const n = transposeB ? br : bc;
    const na = sizeOf(aBatch);
    const nb = sizeOf(bBatch);
    const total = sizeOf(outBatch);
    if (nb === 1 && !transposeA) {
      // Fold [...batch, M, K] into [batch*M, K]: one 2-D product.
      const out = product(a.reshape([na * ar, ac]) as tf.Tensor2D, b.reshape([br, bc]) as tf.Tensor2D, false, transposeB);
      return out.reshape([...outBatch, m, n]);
    }
    let a3: tf.Tensor3D;
    let b3: tf.Tensor3D;
    if ((na === 1 || na === total) && (nb === 1 || nb === total)) {
      a3 = a.reshape([na, ar, ac]); // [na, M, K] (or [na, K, M])
      b3 = b.reshape([nb, br, bc]); // [nb, K, N] (or [nb, N, K])
    } else {
      // General broadcasting (e.g. [2, 1] x [1, 3] batches): materialise both.
      a3 = tf.broadcastTo(a, [...outBatch, ar, ac]).reshape([total, ar, ac]);
      b3 = tf.broadcastTo(b, [...outBatch, br, bc]).reshape([total, br, bc]);
    }
    return product(a3, b3, transposeA, transposeB).reshape([...outBatch, m, n]);
  });
}

function sizeOf(shape: number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}
