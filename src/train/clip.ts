/**
 * Gradient clipping by global L2 norm, like `torch.nn.utils.clip_grad_norm_`:
 * `total = sqrt(sum_i ||g_i||^2)`; when `total > maxNorm` every gradient is scaled by
 * `maxNorm / (total + 1e-6)`.
 */
import { tf } from '../backend/tf.ts';
import { tensorStats } from '../backend/optimizerKernels.ts';

/**
 * Global L2 norm of `grads` as a host number: float64 accumulation in one native pass with the
 * addon (src/backend/optimizerKernels.ts), else float32 accumulation on the device.
 */
export function globalNorm(grads: readonly tf.Tensor[]): number {
  if (grads.length === 0) return 0;
  const stats = tensorStats(grads);
  if (stats) {
    let sum = 0;
    for (let i = 0; i < stats.length; i += 2) sum += stats[i];
    return Math.sqrt(sum);
  }
  const t = tf.tidy(() => tf.addN(grads.map((g) => g.square().sum())).sqrt());
  const v = t.dataSync()[0];
  t.dispose();
  return v;
}

export interface ClipResult {
  /** The (possibly scaled) gradients: new tensors when clipped, else the inputs themselves. */
  grads: Map<string, tf.Tensor>;
  /** Global norm BEFORE clipping (may be NaN/Inf; then nothing is scaled). */
  norm: number;
  /** Whether the gradients were scaled. */
  clipped: boolean;
}

/**
 * Clip `grads` to global norm `maxNorm` (no clipping when `maxNorm` is undefined, 0 or
 * Infinity: the norm is still computed). Input tensors are never disposed; when clipped the
 * result holds new tensors the caller must dispose.
 */
export function clipByGlobalNorm(grads: ReadonlyMap<string, tf.Tensor>, maxNorm?: number): ClipResult {
  const norm = globalNorm([...grads.values()]);
  const coef = clipCoefficient(norm, maxNorm);
  if (coef === 1) return { grads: new Map(grads), norm, clipped: false };
  const out = new Map<string, tf.Tensor>();
  for (const [k, g] of grads) out.set(k, tf.tidy(() => g.mul(coef)));
  return { grads: out, norm, clipped: true };
}

/**
 * The factor {@link clipByGlobalNorm} scales every gradient by, for global norm `norm`:
 * `maxNorm / (norm + 1e-6)` when `norm > maxNorm`, else 1 (also for a non-finite norm, and
 * when `maxNorm` is undefined, 0 or Infinity).
 */
export function clipCoefficient(norm: number, maxNorm?: number): number {
  const limit = maxNorm && maxNorm > 0 && Number.isFinite(maxNorm) ? maxNorm : Infinity;
  return !Number.isFinite(norm) || norm <= limit ? 1 : limit / (norm + 1e-6);
}
