/**
 * MoR's adapter as ONE differentiable op on the native path (the kernels of
 * src/backend/morLayerKernels.ts): router projection, softmax, scaling of Omega_A and the rank
 * expansion, forward and backward, each one addon call. It computes what mor.ts composes from
 * tfjs ops and rankExpansion.ts (`projectWithRouter`, `routerSoftmax`, `rankExpansion`), with
 * the same products and loops (the same bits, but for the softmax's exp), and replaces their ~26
 * kernels per adapter and step by two.
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
 * `delta` `[T, out]` (the adapter's output, scaling included) and the routing weights `g`
 * `[T, N]` for x `[T, in]`, both differentiable.
 */
export function morFused(x: tf.Tensor2D, p: MorFusedParams, scaling: number): { delta: tf.Tensor2D; g: tf.Tensor2D } {
  const inputs: Record<string, tf.Tensor> = { x, a: p.a, wg: p.wg, omegaA: p.omegaA, b: p.b, omegaB: p.omegaB };
  if (p.bias) inputs.bias = p.bias;
  const hasBias = p.bias !== undefined;
  const engine = tf.engine() as unknown as EngineWithKernelFunc;
  const [delta, g] = engine.runKernelFunc<tf.Tensor[]>({
    inputs,
    forwardFunc: (_backend, save) => {
      const [d, gOut, h, z, bexp] = tf.engine().runKernel(MOR_LAYER, inputs, { scaling }) as unknown as tf.Tensor[];
      save([x, p.a, p.wg, p.omegaA, p.b, p.omegaB, h, gOut, z, bexp]);
      return [d, gOut];
    },
    backwardsFunc: ([dy, dg], saved) => {
      const [sx, sa, swg, somegaA, sb, somegaB, h, g, z, bexp] = saved;
      const grads = tf.engine().runKernel(
        MOR_LAYER_GRAD,
        { dy, dg, x: sx, a: sa, wg: swg, omegaA: somegaA, b: sb, omegaB: somegaB, h, g, z, bexp },
        { scaling, hasBias },
      ) as unknown as tf.Tensor[];
      const [dx, da, dwg, domegaA, db, domegaB, dbias] = grads;
      const out: Record<string, () => tf.Tensor> = {
        x: () => dx, a: () => da, wg: () => dwg, omegaA: () => domegaA, b: () => db, omegaB: () => domegaB,
      };
      if (hasBias) out.bias = () => dbias;
      return out;
    },
  });
  return { delta: delta as tf.Tensor2D, g: g as tf.Tensor2D };
}
