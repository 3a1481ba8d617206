/**
 * Linear layers of a loaded model, with a pure-wasm speed-up: on tfjs-wasm (no native BLAS)
 * `x W^T` with the transpose flag, or with an explicit transpose of W at every call, is very
 * slow (measured: [1,576] x [49152,576]^T took 1.37 s with the transpose vs 43 ms against a
 * stored W^T). Frozen weights never change, so W^T is computed once and kept; the gradient
 * w.r.t. x (`dy W`) needs no transpose either. The cache is dropped when the weight tensor
 * is replaced (identity check) and never used for trainable tf.Variables or on the BLAS path
 * (where transposes are free). `MOR_TRANSPOSE_CACHE=0` disables it (it doubles weight memory).
 */
import { backendInfo, tf } from '../../backend/tf.ts';
import { matMul2d } from '../../backend/matmul.ts';
import { Linear } from '../../nn/linear.ts';
import type { ForwardContext } from '../../nn/context.ts';

/** Should frozen weights keep a transposed copy? (pure-wasm path only) */
function transposeCacheEnabled(): boolean {
  if (process.env.MOR_TRANSPOSE_CACHE === '0') return false;
  try {
    return backendInfo().matmulPath === 'wasm';
  } catch {
    return false;
  }
}

/** A kept `W^T` for one weight tensor, recomputed if the weight object changes. */
export class TransposeCache {
  private source?: tf.Tensor2D;
  private transposed?: tf.Tensor2D;

  /** `W^T` `[in, out]` for `w` `[out, in]`, or undefined when caching does not apply. */
  get(w: tf.Tensor2D): tf.Tensor2D | undefined {
    if (w instanceof tf.Variable || !transposeCacheEnabled()) {
      this.release();
      return undefined;
    }
    if (this.source !== w || !this.transposed || this.transposed.isDisposed) {
      this.release();
      this.source = w;
      this.transposed = tf.keep(tf.transpose(w));
    }
    return this.transposed;
  }

  release(): void {
    this.transposed?.dispose();
    this.transposed = undefined;
    this.source = undefined;
  }
}

/** `x [rows, in] -> x W^T` using a stored `W^T`, gradient for x only (W is frozen). */
function frozenProduct(x: tf.Tensor2D, w: tf.Tensor2D, wT: tf.Tensor2D): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    return {
      value: matMul2d(input, wT), // [rows, out]
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [matMul2d(dy as tf.Tensor2D, w)], // [rows, in]
    };
  }) as unknown as (x: tf.Tensor2D) => tf.Tensor2D;
  return f(x);
}

/** `y = x W^T + b` over the last dim of x, through a cached `W^T` when that is faster. */
export function projectFrozen(x: tf.Tensor, w: tf.Tensor2D, cache: TransposeCache, bias?: tf.Tensor1D): tf.Tensor | undefined {
  const wT = cache.get(w);
  if (!wT) return undefined;
  return tf.tidy(() => {
    const inF = x.shape[x.rank - 1];
    const y = frozenProduct(x.reshape([x.size / inF, inF]), w, wT).reshape([...x.shape.slice(0, -1), w.shape[0]]);
    return bias ? tf.add(y, bias) : y;
  });
}

/** The model's projections: a {@link Linear} (same params, same names) with the W^T cache. */
export class FrozenLinear extends Linear {
  private readonly cache = new TransposeCache();

  override forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    return projectFrozen(x, this.weight, this.cache, this.bias) ?? super.forward(x, ctx);
  }

  /** Free the cached transpose (the model's dispose calls this). */
  releaseCaches(): void {
    this.cache.release();
  }
}
