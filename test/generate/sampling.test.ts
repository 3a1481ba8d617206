/** Sampling: greedy argmax, temperature/top-k/top-p distributions against naive formulas, seeded reproducibility. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, sampleToken, samplingDistribution } from '../../src/generate/sampling.ts';
import { Rng } from '../../src/util/rng.ts';

const logits = [1.0, 3.0, 2.0, -1.0, 2.5];

test('temperature 0 is argmax (first on ties)', () => {
  assert.equal(sampleToken(logits, { temperature: 0 }, new Rng(1)), 1);
  assert.equal(argmax([2, 5, 5, 1]), 1);
});

test('distribution: softmax(logits / T) restricted by top-k and top-p, renormalised', () => {
  const T = 0.7;
  const e = logits.map((l) => Math.exp(l / T));
  const z = e.reduce((a, b) => a + b);
  const full = samplingDistribution(logits, { temperature: T });
  assert.deepEqual(full.ids, [1, 4, 2, 0, 3]);
  full.ids.forEach((id, i) => assert.ok(Math.abs(full.probs[i] - e[id] / z) < 1e-12));
  const k2 = samplingDistribution(logits, { temperature: T, topK: 2 });
  assert.deepEqual(k2.ids, [1, 4]);
  assert.ok(Math.abs(k2.probs[0] - e[1] / (e[1] + e[4])) < 1e-12);
  // top-p: smallest prefix whose mass reaches p
  const p1 = e[1] / z;
  const p2 = (e[1] + e[4]) / z;
  assert.deepEqual(samplingDistribution(logits, { temperature: T, topP: p1 * 0.99 }).ids, [1]);
  assert.deepEqual(samplingDistribution(logits, { temperature: T, topP: (p1 + p2) / 2 }).ids, [1, 4]);
});

test('seeded sampling is reproducible and follows the distribution', () => {
  const draw = (seed: number) => {
    const rng = new Rng(seed);
    return Array.from({ length: 2000 }, () => sampleToken(logits, { temperature: 1, topK: 3 }, rng));
  };
  const a = draw(5);
  assert.deepEqual(a, draw(5));
  assert.notDeepEqual(a, draw(6));
  assert.ok(a.every((t) => t === 1 || t === 4 || t === 2), 'top-k respected');
  const e = [3.0, 2.5, 2.0].map(Math.exp);
  const freq1 = a.filter((t) => t === 1).length / a.length;
  assert.ok(Math.abs(freq1 - e[0] / (e[0] + e[1] + e[2])) < 0.04, `freq ${freq1}`);
});

test('sampleToken (no full sort) draws from exactly samplingDistribution (reference) for k/p combinations', () => {
  const rng0 = new Rng(3);
  const l = Array.from({ length: 40 }, () => rng0.normal(0, 2));
  l[7] = l[8] = l[9]; // ties
  for (const o of [{ temperature: 1 }, { temperature: 0.5, topK: 5 }, { temperature: 1.3, topP: 0.6 }, { temperature: 0.9, topK: 12, topP: 0.8 }]) {
    const ref = samplingDistribution(l, o);
    const rng = new Rng(11);
    const counts = new Map<number, number>();
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const t = sampleToken(l, o, rng);
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    for (const id of counts.keys()) assert.ok(ref.ids.includes(id), `${JSON.stringify(o)}: drew ${id} outside the support`);
    ref.ids.forEach((id, i) => {
      const f = (counts.get(id) ?? 0) / n;
      assert.ok(Math.abs(f - ref.probs[i]) < 0.015, `${JSON.stringify(o)}: id ${id} freq ${f} vs ${ref.probs[i]}`);
    });
  }
});
