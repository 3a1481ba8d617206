/**
 * MoR's adapter as ONE differentiable op on the native path (the kernels of
 * src/backend/morLayerKernels.ts): router projection, softmax, scaling of Omega_A, the rank
 * expansion and the sum with the frozen layer's output, forward and backward, each one addon
 * call. It computes what mor.ts composes from tfjs ops and rankExpansion.ts (`projectWithRouter`,
 * `routerSoftmax`, `rankExpansion`, then `y + delta`) with the same products and loops (equal
 * values but for the softmax's exp and where y is added in), and replaces their ~27 kernels per
 * adapter and step by two.
 *
 * It serves the common case: a learned router (softmax or balanced) and no dropout on the
 * adapter's input (the router and A then read the same x). The routing weights g are a second
 * output, so routing statistics and the load-balance loss read them, and the gradient of that
 * loss flows back through the softmax.
 */
import { tf } from '../backend/tf.ts';
import { blasActive } from '../backend/blas.ts';
import type { EngineWithKernelFunc } from '../backend/matmul.ts';
import { MOR_LAYER, MOR_LAYER_GRAD, morLayerKernelsRegistered } from '../backend/morLayerKernels.ts';

/** The tensors of one MoR adapter the fused op reads. */
export interface MorFusedParams {
  /** A `[r, in]`. */
  a: tf.Tensor;
  /** Router W_g `[N, in]`. */
  wg: tf.Tensor;
  /** Router bias `[N]`, if any. */
  bias?: tf.Tensor;
  /** Omega_A `[N, r]` (unscaled: the op multiplies by the scaling). */
  omegaA: tf.Tensor;
  /** B `[out, r]`. */
  b: tf.Tensor;
  /** Omega_B `[N, out]`. */
  omegaB: tf.Tensor;
}

/** True where the fused op runs (the addon's kernels registered and the BLAS path active). */
export function morFusedAvailable(): boolean {
  return morLayerKernelsRegistered() && blasActive();
}

/**
 * `y + delta` `[T, out]` (delta the adapter's output, scaling included, for x `[T, in]`; y the
 * frozen layer's output for x) and the routing weights `g` `[T, N]`, both differentiable.
 */
export function morFused(x: tf.Tensor2D, y: tf.Tensor2D, p: MorFusedParams, scaling: number): { out: tf.Tensor2D; g: tf.Tensor2D } {
  const inputs: Record<string, tf.Tensor> = { x, a: p.a, wg: p.wg, omegaA: p.omegaA, b: p.b, omegaB: p.omegaB, y };
  if (p.bias) inputs.bias = p.bias;
  const hasBias = p.bias !== undefined;
  const engine = tf.engine() as unknown as EngineWithKernelFunc;
  const [out, g] = engine.runKernelFunc<tf.Tensor[]>({
    inputs,
    forwardFunc: (_backend, save) => {
      const [sum, gOut, h, z, bexp] = tf.engine().runKernel(MOR_LAYER, inputs, { scaling }) as unknown as tf.Tensor[];
      save([x, p.a, p.wg, p.omegaA, p.b, p.omegaB, h, gOut, z, bexp]);
      return [sum, gOut];
    },
    backwardsFunc: ([dy, dg], saved) => {
      const [sx, sa, swg, somegaA, sb, somegaB, h, g, z, bexp] = saved;
      const grads = tf.engine().runKernel(
        MOR_LAYER_GRAD,
        { dy, dg, x: sx, a: sa, wg: swg, omegaA: somegaA, b: sb, omegaB: somegaB, h, g, z, bexp },
        { scaling, hasBias },
      ) as unknown as tf.Tensor[];
      const [dx, da, dwg, domegaA, db, domegaB, dbias] = grads;
      const d: Record<string, () => tf.Tensor> = {
        x: () => dx, a: () => da, wg: () => dwg, omegaA: () => domegaA, b: () => db, omegaB: () => domegaB, y: () => dy.clone(),
      };
      if (hasBias) d.bias = () => dbias;
      return d;
    },
  });
  return { out: out as tf.Tensor2D, g: g as tf.Tensor2D };
}
