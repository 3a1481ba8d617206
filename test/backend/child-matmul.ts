/**
 * Child process for blas.test.ts: initialises the backend from the environment it was
 * given (MOR_MATMUL, MOR_BLAS_THREADS) and prints one JSON line: the reported path and a
 * fixed product with its gradients.
 */
import { backendInfo, initBackend, tf } from '../../src/backend/tf.ts';
import { matMul } from '../../src/backend/matmul.ts';
import { values } from './values.ts';

await initBackend({ announce: false });
const [out, da, db] = tf.tidy(() => {
  const a = tf.tensor(values(2 * 5 * 7, 11), [2, 5, 7]);
  const b = tf.tensor(values(6 * 7, 12), [6, 7]);
  const f = (x: tf.Tensor, y: tf.Tensor) => matMul(x, y, false, true).square().sum();
  const [ga, gb] = tf.grads(f)([a, b]);
  return [matMul(a, b, false, true), ga, gb].map((t) => Array.from(t.dataSync()));
});
process.stdout.write(JSON.stringify({ info: backendInfo(), out, da, db }) + '\n');
