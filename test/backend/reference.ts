/**
 * Independent references for the backend tests: tfjs's CPU backend (built-in matMul and its
 * built-in gradient), a float64 naive product, and deterministic inputs.
 */
import '@tensorflow/tfjs-backend-cpu';
import { tf } from '../../src/backend/tf.ts';
import { values } from './values.ts';

export { values };

export interface Case {
  name: string;
  a: number[];
  b: number[];
  tA: boolean;
  tB: boolean;
}

export interface Result {
  shape: number[];
  out: Float32Array;
  da: Float32Array;
  db: Float32Array;
}

/**
 * `out = matMul(a, b)`, loss = sum(out * r) with fixed r, and its gradients, computed with
 * tfjs's CPU backend and tf.matMul's built-in gradient. Switches back to wasm afterwards.
 */
export async function cpuReference(c: Case, seed: number): Promise<Result> {
  const prevTest = tf.env().getBool('IS_TEST');
  tf.env().set('IS_TEST', true); // silences the cpu backend's "install tfjs-node" banner
  await tf.setBackend('cpu');
  try {
    return tf.tidy(() => {
      const a = tf.tensor(values(sizeOf(c.a), seed), c.a);
      const b = tf.tensor(values(sizeOf(c.b), seed + 1), c.b);
      // tf.matMul's built-in gradient mishandles some batch broadcasts (2-D b with a 4-D a),
      // so the reference broadcasts both operands explicitly (tf.broadcastTo's gradient sums).
      const batch = tf.broadcast_util.assertAndGetBroadcastShape(c.a.slice(0, -2), c.b.slice(0, -2));
      const mm = (x: tf.Tensor, y: tf.Tensor) =>
        tf.matMul(tf.broadcastTo(x, [...batch, ...c.a.slice(-2)]), tf.broadcastTo(y, [...batch, ...c.b.slice(-2)]), c.tA, c.tB);
      const out = mm(a, b);
      const r = tf.tensor(values(out.size, seed + 2), out.shape);
      const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => mm(x, y).mul(r).sum())([a, b]);
      return { shape: out.shape, out: out.dataSync() as Float32Array, da: da.dataSync() as Float32Array, db: db.dataSync() as Float32Array };
    });
  } finally {
    await tf.setBackend('wasm');
    tf.env().set('IS_TEST', prevTest);
  }
}

/** The same quantities with an arbitrary matmul on the active (wasm) backend. */
export function projectResult(
  c: Case,
  seed: number,
  mm: (a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean) => tf.Tensor,
): Result {
  return tf.tidy(() => {
    const a = tf.tensor(values(sizeOf(c.a), seed), c.a);
    const b = tf.tensor(values(sizeOf(c.b), seed + 1), c.b);
    const out = mm(a, b, c.tA, c.tB);
    const r = tf.tensor(values(out.size, seed + 2), out.shape);
    const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => mm(x, y, c.tA, c.tB).mul(r).sum())([a, b]);
    return { shape: out.shape, out: out.dataSync() as Float32Array, da: da.dataSync() as Float32Array, db: db.dataSync() as Float32Array };
  });
}

/** Float64 naive `op(A) op(B)` for 2-D row-major inputs `a` [ar, ac], `b` [br, bc]. */
export function naiveMatMul(a: Float32Array, ar: number, ac: number, b: Float32Array, br: number, bc: number,
  tA: boolean, tB: boolean): Float64Array {
  const m = tA ? ac : ar;
  const k = tA ? ar : ac;
  const n = tB ? br : bc;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = tA ? a[p * ac + i] : a[i * ac + p];
        const bv = tB ? b[j * bc + p] : b[p * bc + j];
        s += av * bv;
      }
      out[i * n + j] = s;
    }
  }
  return out;
}

/** max |x - y| / max(max |y|, 1e-6): the relative error the tests bound by 1e-4. */
export function relErr(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) return Infinity;
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return diff / scale;
}

export function sizeOf(shape: number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}
