/** LoRA and DoRA layers against formulas computed on the host; init distributions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { Rng } from '../../src/util/rng.ts';
import { LoraLinear, type LoraLayerSpec } from '../../src/adapters/lora.ts';
import { DoraLinear } from '../../src/adapters/dora.ts';
import { leakCheck, maxAbsDiff, randLinear, randTensor } from './helpers.ts';

await initBackend();

const spec = (over: Partial<LoraLayerSpec> = {}): LoraLayerSpec => ({
  r: 4, alpha: 8, dropout: 0, useRslora: false, init: false, seed: 1, ...over,
});

/** Row-major host matmul a [m,k] x b^T (b [n,k]) -> [m,n]. */
function mmT(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let q = 0; q < k; q++) s += a[i * k + q] * b[j * k + q];
    out[i * n + j] = s;
  }
  return out;
}

test('LoRA default init: A kaiming-uniform(a=sqrt(5)) within 1/sqrt(in), B zeros; gaussian: std 1/r', () => {
  const l = new LoraLinear(randLinear(new Rng(1), 64, 100), 'p');
  l.addAdapter('default', spec({ r: 8, init: 'default' }));
  l.addAdapter('g', spec({ r: 8, init: 'gaussian' }));
  const a = l.state('default').tensors.get('lora_A.weight')!.dataSync();
  const bound = 1 / Math.sqrt(100);
  assert.ok(a.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...a) > 0.9 * bound && Math.min(...a) < -0.9 * bound, 'spans the whole range');
  assert.ok(l.state('default').tensors.get('lora_B.weight')!.dataSync().every((v) => v === 0));
  const g = Array.from(l.state('g').tensors.get('lora_A.weight')!.dataSync());
  const std = Math.sqrt(g.reduce((s, v) => s + v * v, 0) / g.length);
  assert.ok(Math.abs(std - 1 / 8) < 0.01, `std ${std}`);
  l.dispose();
});

test('LoRA forward = W x + b + s B A x with s = alpha/r or alpha/sqrt(r) (rsLoRA), on [B, T, in] inputs', () => {
  for (const useRslora of [false, true]) {
    const rng = new Rng(3);
    const l = new LoraLinear(randLinear(rng, 5, 6, true), 'p');
    l.addAdapter('default', spec({ useRslora, loraBias: true }));
    l.setActiveAdapter('default');
    const st = l.state('default').tensors;
    tf.tidy(() => st.get('lora_B.bias')!.assign(randTensor(rng, [5])));
    const x = randTensor(rng, [2, 3, 6]);
    const { value: y, leaked } = leakCheck(() => l.forward(x));
    assert.equal(leaked, 1, 'only the output survives');
    const s = useRslora ? 8 / 2 : 8 / 4;
    const xs = x.dataSync();
    const base = mmT(xs, l.baseLayer.weight.dataSync(), 6, 6, 5);
    const h = mmT(xs, st.get('lora_A.weight')!.dataSync(), 6, 6, 4);
    const d = mmT(h, st.get('lora_B.weight')!.dataSync(), 6, 4, 5);
    const b = l.baseLayer.bias!.dataSync();
    const bb = st.get('lora_B.bias')!.dataSync();
    const ys = y.dataSync();
    for (let i = 0; i < 30; i++) {
      const e = base[i] + b[i % 5] + s * (d[i] + bb[i % 5]);
      assert.ok(Math.abs(ys[i] - e) < 1e-5, `${i}: ${ys[i]} vs ${e}`);
    }
    tf.dispose([x, y]);
    l.dispose();
  }
});

test('DoRA: magnitude = row norms of W + sBA; forward = (m / ||W + sBA||) (W x + s B A x) + b', () => {
  const rng = new Rng(4);
  const l = new DoraLinear(randLinear(rng, 5, 6, true), 'p');
  l.addAdapter('default', spec());
  l.addAdapter('zeroB', spec({ init: 'default' }));
  l.setActiveAdapter('default');
  const st = l.state('default').tensors;
  const w = l.baseLayer.weight.dataSync();
  const a = st.get('lora_A.weight')!.dataSync();
  const bm = st.get('lora_B.weight')!.dataSync();
  const s = 2;
  // W + s B A on the host.
  const ba = new Float64Array(30);
  for (let o = 0; o < 5; o++) for (let i = 0; i < 6; i++) {
    let v = 0;
    for (let k = 0; k < 4; k++) v += bm[o * 4 + k] * a[k * 6 + i];
    ba[o * 6 + i] = w[o * 6 + i] + s * v;
  }
  const norms = Array.from({ length: 5 }, (_, o) => Math.sqrt(ba.slice(o * 6, o * 6 + 6).reduce((t, v) => t + v * v, 0)));
  const m = st.get('lora_magnitude_vector')!.dataSync();
  norms.forEach((n, o) => assert.ok(Math.abs(m[o] - n) < 1e-5));
  // With B = 0 the magnitude is ||W|| per output row (PEFT: norm over dim 1 of [out, in]).
  const m0 = l.state('zeroB').tensors.get('lora_magnitude_vector')!.dataSync();
  for (let o = 0; o < 5; o++) assert.ok(Math.abs(m0[o] - Math.hypot(...w.slice(o * 6, o * 6 + 6))) < 1e-5);
  // Change m so that the scale differs from 1, then check the forward formula.
  const newM = Float32Array.from(m, (v, o) => v * (1 + 0.1 * (o + 1)));
  tf.tidy(() => st.get('lora_magnitude_vector')!.assign(tf.tensor1d(newM)));
  const x = randTensor(rng, [3, 6]);
  const y = l.forward(x).dataSync();
  const xs = x.dataSync();
  const b = l.baseLayer.bias!.dataSync();
  for (let t = 0; t < 3; t++) for (let o = 0; o < 5; o++) {
    let v = 0;
    for (let i = 0; i < 6; i++) v += ba[o * 6 + i] * xs[t * 6 + i];
    const e = (newM[o] / norms[o]) * v + b[o];
    assert.ok(Math.abs(y[t * 5 + o] - e) < 1e-5);
  }
  x.dispose();
  l.dispose();
});

test('DoRA backward treats the norm as a constant: gradient of A equals the fixed-norm formula', () => {
  const rng = new Rng(6);
  const l = new DoraLinear(randLinear(rng, 4, 5), 'p');
  l.addAdapter('default', spec({ r: 2 }));
  l.setActiveAdapter('default');
  const st = l.state('default').tensors;
  const x = randTensor(rng, [3, 5]);
  const A = st.get('lora_A.weight')!;
  const { grads, value } = tf.variableGrads(() => tf.sum(l.forward(x)) as tf.Scalar, [A]);
  // d/dA sum_t,o (m_o/n_o) * s * (B A x_t)_o with n fixed = s * B^T diag(m/n) 1 x^T summed over t.
  const m = st.get('lora_magnitude_vector')!.dataSync();
  const n = l.weightNorm(l.state('default'));
  const nn = n.dataSync();
  const B = st.get('lora_B.weight')!.dataSync();
  const xs = x.dataSync();
  const s = 8 / 2;
  const ga = grads[A.name].dataSync();
  for (let k = 0; k < 2; k++) for (let i = 0; i < 5; i++) {
    let e = 0;
    for (let o = 0; o < 4; o++) for (let t = 0; t < 3; t++) e += s * (m[o] / nn[o]) * B[o * 2 + k] * xs[t * 5 + i];
    assert.ok(Math.abs(ga[k * 5 + i] - e) < 1e-4, `${ga[k * 5 + i]} vs ${e}`);
  }
  tf.dispose([x, value, n, ...Object.values(grads)]);
  l.dispose();
});

test('LoRA dropout is inverted dropout on the adapter input only, seeded by ctx.seed', () => {
  const rng = new Rng(9);
  const l = new LoraLinear(randLinear(rng, 4, 6), 'p');
  l.addAdapter('default', spec({ dropout: 0.5 }));
  l.setActiveAdapter('default');
  const x = randTensor(rng, [50, 6]);
  const base = l.baseLayer.forward(x);
  const ev = l.forward(x, { training: false, auxLosses: [] });
  const tr1 = l.forward(x, { training: true, auxLosses: [], seed: 4 });
  const tr2 = l.forward(x, { training: true, auxLosses: [], seed: 4 });
  assert.equal(maxAbsDiff(tr1, tr2), 0);
  assert.ok(maxAbsDiff(tr1, ev) > 1e-3);
  // The expectation over masks is the eval output: average many seeds.
  const mean = tf.tidy(() => {
    let acc: tf.Tensor = tf.zerosLike(ev);
    for (let sd = 0; sd < 200; sd++) acc = tf.add(acc, l.forward(x, { training: true, auxLosses: [], seed: sd }));
    return tf.div(acc, 200);
  });
  const scale = tf.tidy(() => tf.sub(ev, base).abs().max().dataSync()[0]);
  assert.ok(maxAbsDiff(mean, ev) < 0.25 * scale, `${maxAbsDiff(mean, ev)} vs ${scale}`);
  tf.dispose([x, base, ev, tr1, tr2, mean]);
  l.dispose();
});
