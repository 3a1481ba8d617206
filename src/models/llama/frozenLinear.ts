/**
 * Linear layers of a loaded model, specialised for frozen weights (the base model under
 * adapters):
 *  - the backward pass computes only the input gradient `dy W`: the project matmul's custom
 *    gradient also computes `dW = x^T dy`, a full-size product wasted on a frozen weight;
 *  - on the pure-wasm path (no native BLAS) `x W^T` with the transpose flag, or with an
 *    explicit transpose of W at every call, is very slow (measured: [1,576] x [49152,576]^T
 *    took 1.37 s with the transpose vs 43 ms against a stored W^T), so W^T is computed once
 *    and kept. The cache is dropped when the weight tensor is replaced (identity check) and
 *    never used on the BLAS path (transposes are free there). `MOR_TRANSPOSE_CACHE=0`
 *    disables it (it doubles weight memory).
 * A weight kept in the native store (src/backend/weightStore.ts: big models, outside the wasm
 * heap) runs through the store's kernels, forward `x Wᵀ` and backward `dy W`.
 * A trainable weight (a tf.Variable: full fine-tuning) takes the plain Linear path.
 */
import { backendInfo, tf } from '../../backend/tf.ts';
import { matMul2d } from '../../backend/matmul.ts';
import { Linear } from '../../nn/linear.ts';
import type { ForwardContext } from '../../nn/context.ts';
import { StoredWeight, storedMatMul, type FrozenWeight } from '../../backend/weightStore.ts';

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

/**
 * `x [rows, in] -> x W^T` (through a kept `W^T` when given, or the store's kernel for a stored
 * W), gradient for x only (W is frozen).
 */
function frozenProduct(x: tf.Tensor2D, w: FrozenWeight, wT: tf.Tensor2D | undefined): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    if (w instanceof StoredWeight) {
      return {
        value: storedMatMul(input, w, true), // [rows, out]
        gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [storedMatMul(dy as tf.Tensor2D, w, false)], // [rows, in]
      };
    }
    return {
      value: wT ? matMul2d(input, wT) : matMul2d(input, w, false, true), // [rows, out]
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [matMul2d(dy as tf.Tensor2D, w)], // [rows, in]
    };
  }) as unknown as (x: tf.Tensor2D) => tf.Tensor2D;
  return f(x);
}

/**
 * `y = x W^T + b` over the last dim of x for a frozen W (input gradient only; cached `W^T` on
 * pure wasm). Returns undefined for a tf.Variable weight: the caller takes the plain path.
 */
export function projectFrozen(x: tf.Tensor, w: FrozenWeight, cache: TransposeCache, bias?: tf.Tensor1D): tf.Tensor | undefined {
  if (w instanceof tf.Variable) {
    cache.release();
    return undefined;
  }
  const wT = w instanceof StoredWeight ? undefined : cache.get(w);
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
  override releaseCaches(): void {
    this.cache.release();
  }
}
