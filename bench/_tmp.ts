import { initBackend, tf } from '../src/backend/tf.ts';
import { matMul } from '../src/backend/matmul.ts';
await initBackend({ matmul: 'wasm' });
const a = tf.randomNormal([8, 256, 64]), b = tf.randomNormal([8, 256, 64]), dy = tf.randomNormal([8, 256, 256]);
const grad = tf.grads((x: tf.Tensor, y: tf.Tensor) => matMul(x, y, false, true));
for (let i = 0; i < 3; i++) tf.dispose(grad([a, b], dy));
const prof = await tf.profile(() => tf.dispose(grad([a, b], dy)));
const agg = new Map<string, [number, number]>();
for (const k of prof.kernels) { const key = k.name + ' ' + JSON.stringify(k.inputShapes); const v = agg.get(key) ?? [0, 0]; agg.set(key, [v[0] + (k.kernelTimeMs as number), v[1] + 1]); }
for (const [k, v] of agg) console.log(v[0].toFixed(1), v[1], k);
