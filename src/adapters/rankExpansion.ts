/**
 * MoR's rank-expansion product as ONE differentiable op (see docs/mor.md):
 *
 *     z[t, (i,k)]     = g[t,i] * om[i,k] * h[t,k]        [T, N*r]   (om = s * Omega_A)
 *     bexp[j, (i,k)]  = Omega_B[i,j] * B[j,k]            [out, N*r]
 *     delta           = z bexpᵀ                          [T, out]
 *
 * The two big products of the backward are project matmuls (`dz = dy bexp`,
 * `dbexp = dyᵀ z`); everything else is element-wise and runs in the native kernels of
 * src/backend/rankKernels.ts when the OpenBLAS addon is active, or as the tfjs ops below on
 * the pure-wasm path. Autodiff of the tfjs-op forward would produce the same gradients
 * through ~20 small kernels (broadcast reductions over middle axes included); this op needs
 * four element-wise passes in all.
 */
import { tf } from '../backend/tf.ts';
import { matMul } from '../backend/matmul.ts';
import { blasActive } from '../backend/blas.ts';
import { RANK_BEXP, RANK_BEXP_GRAD, RANK_Z, RANK_Z_GRAD, rankKernelsRegistered } from '../backend/rankKernels.ts';

/** Shapes of one rank expansion: tokens, experts, rank, output features. */
interface Dims {
  t: number;
  n: number;
  r: number;
  dOut: number;
}

function dimsOf(h: tf.Tensor, om: tf.Tensor, b: tf.Tensor): Dims {
  return { t: h.shape[0], n: om.shape[0], r: om.shape[1] as number, dOut: b.shape[0] };
}

/** The tfjs-op versions of the four element-wise parts (the pure-wasm path, and the tests' reference). */
export const rankExpansionOps = {
  /** z `[T, N*r]` from h `[T, r]`, g `[T|1, N]`, om `[N, r]`. */
  z(h: tf.Tensor2D, g: tf.Tensor2D, om: tf.Tensor2D): tf.Tensor2D {
    const { t, n, r } = dimsOf(h, om, om);
    return tf.tidy(() => tf.mul(tf.mul(g.reshape([-1, n, 1]), om.reshape([1, n, r])), h.reshape([t, 1, r])).reshape([t, n * r]));
  },
  /** bexp `[out, N*r]` from B `[out, r]`, Omega_B `[N, out]`. */
  bexp(b: tf.Tensor2D, omegaB: tf.Tensor2D): tf.Tensor2D {
    const [dOut, r] = b.shape;
    const n = omegaB.shape[0];
    return tf.tidy(() => tf.mul(tf.transpose(omegaB).reshape([dOut, n, 1]), b.reshape([dOut, 1, r])).reshape([dOut, n * r]));
  },
  /** Gradients of z w.r.t. h, g, om for dz `[T, N*r]`. */
  zGrad(dz: tf.Tensor2D, h: tf.Tensor2D, g: tf.Tensor2D, om: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D] {
    const { t, n, r } = dimsOf(h, om, om);
    return tf.tidy(() => {
      const dz3 = dz.reshape([t, n, r]);
      const g3 = g.reshape([-1, n, 1]);
      const dh = tf.sum(tf.mul(dz3, tf.mul(g3, om.reshape([1, n, r]))), 1) as tf.Tensor2D; // [T, r]
      const dzh = tf.mul(dz3, h.reshape([t, 1, r])); // [T, N, r]
      let dg = tf.sum(tf.mul(dzh, om.reshape([1, n, r])), 2) as tf.Tensor2D; // [T, N]
      if (g.shape[0] === 1) dg = dg.sum(0, true);
      const dom = tf.sum(tf.mul(dzh, g3), 0) as tf.Tensor2D; // [N, r]
      return [dh, dg, dom];
    });
  },
  /** Gradients of bexp w.r.t. B and Omega_B for dbexp `[out, N*r]`. */
  bexpGrad(dbexp: tf.Tensor2D, b: tf.Tensor2D, omegaB: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D] {
    const [dOut, r] = b.shape;
    const n = omegaB.shape[0];
    return tf.tidy(() => {
      const d3 = dbexp.reshape([dOut, n, r]);
      const db = tf.sum(tf.mul(d3, tf.transpose(omegaB).reshape([dOut, n, 1])), 1) as tf.Tensor2D; // [out, r]
      const domegaB = tf.transpose(tf.sum(tf.mul(d3, b.reshape([dOut, 1, r])), 2)) as tf.Tensor2D; // [N, out]
      return [db, domegaB];
    });
  },
};

/** The same four parts as single native kernels (only while the BLAS addon is active). */
export const rankExpansionNative = {
  z: (h: tf.Tensor2D, g: tf.Tensor2D, om: tf.Tensor2D) => tf.engine().runKernel(RANK_Z, { h, g, om }) as tf.Tensor2D,
  bexp: (b: tf.Tensor2D, omegaB: tf.Tensor2D) => tf.engine().runKernel(RANK_BEXP, { b, omegaB }) as tf.Tensor2D,
  zGrad: (dz: tf.Tensor2D, h: tf.Tensor2D, g: tf.Tensor2D, om: tf.Tensor2D) =>
    tf.engine().runKernel(RANK_Z_GRAD, { dz, h, g, om }) as unknown as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D],
  bexpGrad: (dbexp: tf.Tensor2D, b: tf.Tensor2D, omegaB: tf.Tensor2D) =>
    tf.engine().runKernel(RANK_BEXP_GRAD, { dbexp, b, omegaB }) as unknown as [tf.Tensor2D, tf.Tensor2D],
};

/** The native kernels when the BLAS path is active, else the tfjs ops. */
export function rankExpansionParts(): typeof rankExpansionOps {
  return rankKernelsRegistered() && blasActive() ? rankExpansionNative : rankExpansionOps;
}

const product = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [h, g, om, b, omegaB] = args.slice(0, 5) as tf.Tensor2D[];
  const save = args[5] as tf.GradSaveFunc;
  const parts = rankExpansionParts();
  const z = parts.z(h, g, om);
  const bexp = parts.bexp(b, omegaB);
  save([h, g, om, b, omegaB, z, bexp]);
  return {
    value: matMul(z, bexp, false, true),
    gradFunc: (dy, saved) => {
      const [sh, sg, som, sb, somegaB, sz, sbexp] = saved as tf.Tensor2D[];
      const now = rankExpansionParts();
      const dz = matMul(dy, sbexp) as tf.Tensor2D; // [T, N*r]
      // [out, N*r]: out (1536 or 576) rows, where zᵀ dy had N*r = 256; the own sgemm is ~15 % faster so.
      const dbexp = matMul(dy, sz, true, false) as tf.Tensor2D;
      return [...now.zGrad(dz, sh, sg, som), ...now.bexpGrad(dbexp, sb, somegaB)];
    },
  };
});

/**
 * `z bexpᵀ` `[T, out]` for h `[T, r]`, routing g `[T, N]` (or `[1, N]`, shared by every
 * token), om `[N, r]` (Omega_A, already scaled), B `[out, r]`, Omega_B `[N, out]`.
 */
export function rankExpansion(h: tf.Tensor2D, g: tf.Tensor2D, om: tf.Tensor2D, b: tf.Tensor2D, omegaB: tf.Tensor2D): tf.Tensor2D {
  const { t, n, r, dOut } = dimsOf(h, om, b);
  const ok = h.rank === 2 && h.shape[1] === r && g.rank === 2 && g.shape[1] === n && (g.shape[0] === 1 || g.shape[0] === t) &&
    b.rank === 2 && b.shape[1] === r && omegaB.rank === 2 && omegaB.shape[0] === n && omegaB.shape[1] === dOut;
  if (!ok) {
    throw new Error(`rankExpansion: shapes h [${h.shape}], g [${g.shape}], om [${om.shape}], b [${b.shape}], omegaB [${omegaB.shape}] do not fit`);
  }
  return (product as unknown as (...xs: tf.Tensor[]) => tf.Tensor2D)(h, g, om, b, omegaB);
}
