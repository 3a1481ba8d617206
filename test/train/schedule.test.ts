import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lrAt } from '../../src/train/schedule.ts';

const close = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('warmup ramps linearly from lr/warmup to lr', () => {
  const cfg = { lr: 2, warmupSteps: 10, totalSteps: 110, kind: 'cosine' as const };
  close(lrAt(1, cfg), 0.2);
  close(lrAt(5, cfg), 1);
  close(lrAt(10, cfg), 2);
});

test('cosine decay to minLr (values computed by hand)', () => {
  const cfg = { lr: 1, warmupSteps: 10, totalSteps: 110, kind: 'cosine' as const, minLr: 0.1 };
  close(lrAt(60, cfg), 0.55); // p = 0.5: 0.1 + 0.9 * (1 + 0) / 2
  close(lrAt(35, cfg), 0.1 + 0.9 * (1 + Math.SQRT1_2) / 2); // p = 0.25
  close(lrAt(110, cfg), 0.1); // p = 1
  close(lrAt(500, cfg), 0.1); // past the end
});

test('linear decay and constant', () => {
  const lin = { lr: 1, warmupSteps: 0, totalSteps: 100, kind: 'linear' as const };
  close(lrAt(1, lin), 0.99);
  close(lrAt(50, lin), 0.5);
  close(lrAt(100, lin), 0);
  const withMin = { ...lin, minLr: 0.2 };
  close(lrAt(75, withMin), 0.4);
  close(lrAt(7, { lr: 3e-4, warmupSteps: 2, totalSteps: 10, kind: 'constant' }), 3e-4);
  assert.throws(() => lrAt(0, lin), /step must be >= 1/);
});
