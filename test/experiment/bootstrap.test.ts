/**
 * The paired bootstrap against cases computed by hand: identical methods give an interval of 0
 * (not distinguishable); always right vs always wrong gives +100 points (better); a two-item task
 * with one difference gives the known 3-point distribution; tasks are averaged unweighted;
 * seeds are resampled; the bootstrap mean agrees with the plain paired difference; a fixed seed
 * reproduces the interval. Also the quantile rule and the verdict words.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { correctnessOf, pairedBootstrap, quantileSorted, verdictOf } from '../../src/experiment/bootstrap.ts';
import { Rng } from '../../src/util/rng.ts';

const opts = { resamples: 2000, seed: 0, level: 0.95 };
const close = (a: number, b: number, tol: number, what: string): void => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('bootstrap: identical methods give an interval of exactly 0, not distinguishable', () => {
  const rng = new Rng(1);
  const tasks = Array.from({ length: 40 }, (_, i) => (i < 25 ? 'x' : 'y'));
  const a = [0, 1, 2].map(() => tasks.map(() => (rng.next() < 0.4 ? 1 : 0)));
  const r = pairedBootstrap({ tasks, a, b: a }, opts);
  assert.equal(r.mean, 0);
  assert.equal(r.lo, 0);
  assert.equal(r.hi, 0);
  assert.equal(r.verdict, 'not distinguishable');
  assert.equal(r.seeds, 3);
  assert.equal(r.items, 40);
});

test('bootstrap: always right vs always wrong is +100 points, better; the reverse is worse', () => {
  const tasks = ['x', 'x', 'y', 'y', 'y'];
  const ones = [tasks.map(() => 1), tasks.map(() => 1)];
  const zeros = [tasks.map(() => 0), tasks.map(() => 0)];
  const r = pairedBootstrap({ tasks, a: ones, b: zeros }, opts);
  close(r.mean, 1, 1e-12, 'mean');
  close(r.lo, 1, 1e-12, 'lo');
  close(r.hi, 1, 1e-12, 'hi');
  assert.equal(r.verdict, 'better');
  assert.equal(pairedBootstrap({ tasks, a: zeros, b: ones }, opts).verdict, 'worse');
});

test('bootstrap: one task of two items, one of them won: replicates are 0, 0.5 or 1 with p 1/4, 1/2, 1/4', () => {
  // d = [1, 0]: a replicate draws 2 items with replacement; its mean is 0 (p 1/4), 0.5 or 1 (p 1/4).
  const r = pairedBootstrap({ tasks: ['t', 't'], a: [[1, 0]], b: [[0, 0]] }, opts);
  assert.equal(r.mean, 0.5);
  assert.equal(r.lo, 0);
  assert.equal(r.hi, 1);
  assert.equal(r.verdict, 'not distinguishable');
  close(r.bootstrapMean, 0.5, 0.03, 'bootstrap mean'); // sd of the mean of 2000 replicates: 0.35 / sqrt(2000) = 0.008
});

test('bootstrap: tasks are averaged unweighted, so a one-item task weighs as much as a large one', () => {
  // Task a: 1 item, won by a. Task b: 3 items, all ties. Per-task means: 1 and 0 -> 0.5 (not 1/4).
  const r = pairedBootstrap({ tasks: ['a', 'b', 'b', 'b'], a: [[1, 1, 0, 1]], b: [[0, 1, 0, 1]] }, opts);
  assert.equal(r.mean, 0.5);
  // Task a always draws its only item, task b only ties: every replicate is 0.5.
  assert.equal(r.lo, 0.5);
  assert.equal(r.hi, 0.5);
  assert.equal(r.verdict, 'better');
});

test('bootstrap: seeds are resampled (one seed won everything, the other nothing: interval [0, 1])', () => {
  const tasks = ['t', 't', 't'];
  const r = pairedBootstrap({ tasks, a: [[1, 1, 1], [0, 0, 0]], b: [[0, 0, 0], [0, 0, 0]] }, opts);
  assert.equal(r.mean, 0.5);
  assert.equal(r.lo, 0);
  assert.equal(r.hi, 1);
});

test('bootstrap: the bootstrap mean matches the plain paired mean difference; a fixed seed reproduces the interval', () => {
  const rng = new Rng(7);
  const tasks = Array.from({ length: 300 }, (_, i) => ['p', 'q', 'r'][i % 3]);
  const a = [0, 1, 2, 3, 4].map(() => tasks.map(() => (rng.next() < 0.6 ? 1 : 0)));
  const b = [0, 1, 2, 3, 4].map(() => tasks.map(() => (rng.next() < 0.5 ? 1 : 0)));
  // The plain paired difference, by hand: per seed, unweighted mean over the 3 tasks (100 items each).
  const avg = (row: number[]): number => ['p', 'q', 'r'].reduce((s, t) => s + row.filter((_, i) => tasks[i] === t).reduce((x, y) => x + y, 0) / 100, 0) / 3;
  const plain = a.reduce((s, row, k) => s + avg(row) - avg(b[k]), 0) / 5;
  const r = pairedBootstrap({ tasks, a, b }, opts);
  close(r.mean, plain, 1e-12, 'mean');
  close(r.bootstrapMean, plain, 0.005, 'bootstrap mean');
  assert.ok(r.lo < plain && plain < r.hi);
  assert.deepEqual(pairedBootstrap({ tasks, a, b }, opts), r);
  assert.notEqual(pairedBootstrap({ tasks, a, b }, { ...opts, seed: 1 }).lo, r.lo);
  // A wider level gives a wider interval.
  const r99 = pairedBootstrap({ tasks, a, b }, { ...opts, level: 0.99 });
  assert.ok(r99.lo <= r.lo && r99.hi >= r.hi);
});

test('bootstrap: mismatched shapes are errors', () => {
  assert.throws(() => pairedBootstrap({ tasks: ['t'], a: [[1]], b: [] }, opts), /1 and 0 seeds/);
  assert.throws(() => pairedBootstrap({ tasks: ['t', 't'], a: [[1]], b: [[1]] }, opts), /a row of 1 items for 2 tasks/);
});

test('quantiles, verdicts and correctness strings', () => {
  assert.equal(quantileSorted([0, 10], 0.25), 2.5);
  assert.equal(quantileSorted([1, 2, 3, 4, 5], 0.5), 3);
  assert.equal(quantileSorted([1, 2, 3, 4, 5], 1), 5);
  assert.ok(Number.isNaN(quantileSorted([], 0.5)));
  assert.equal(verdictOf(0.001, 0.02), 'better');
  assert.equal(verdictOf(-0.02, -0.001), 'worse');
  assert.equal(verdictOf(0, 0.02), 'not distinguishable');
  assert.deepEqual(correctnessOf('0110'), [0, 1, 1, 0]);
});
