import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ProgressReporter, formatDuration, formatLr } from '../../src/train/progress.ts';
import type { TrainRecord } from '../../src/train/metrics.ts';

class Sink extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

const rec = (step: number, loss: number): TrainRecord => ({
  type: 'train', step, loss, lr: 1e-4, gradNorm: 1, tokens: 100, elapsedSec: step * 0.5, tokensPerSec: 1534.4,
});

test('duration and lr formats', () => {
  assert.equal(formatDuration(80), '1m20s');
  assert.equal(formatDuration(45.2), '45s');
  assert.equal(formatDuration(7380), '2h03m');
  assert.equal(formatDuration(NaN), '?');
  assert.equal(formatLr(1e-4), '1.0e-4');
  assert.equal(formatLr(0.00025), '2.5e-4');
});

test('plain lines when not a terminal: every N steps, first and last, with ETA', () => {
  const sink = new Sink();
  let now = 0;
  const p = new ProgressReporter({ total: 200, stream: sink, every: 20, now: () => now });
  for (let s = 1; s <= 200; s++) {
    now = s * 500; // 0.5 s per step
    p.step(rec(s, 2.34123));
  }
  p.evaluation({ type: 'eval', step: 200, metrics: { loss: 2.1, acc: 0.5 } });
  p.stop();
  const lines = sink.text.trim().split('\n');
  assert.equal(lines.length, 1 + 10 + 1); // step 1, steps 20..200 by 20, eval
  assert.equal(lines[1], 'step 20/200 loss 2.3412 lr 1.0e-4 tok/s 1534 eta 1m30s'); // 180 steps x 0.5 s
  assert.equal(lines[10], 'step 200/200 loss 2.3412 lr 1.0e-4 tok/s 1534 eta 0s');
  assert.equal(lines[11], 'eval step 200 loss 2.1000 acc 0.5000');
});

test('a bar on a terminal shows step/total, loss, lr, tok/s and eta', () => {
  const sink = new Sink();
  sink.isTTY = true;
  const p = new ProgressReporter({ total: 50, stream: sink, tty: true, now: () => 1000 });
  p.step(rec(1, 3.5));
  p.step(rec(2, 3.25));
  p.stop();
  assert.match(sink.text, / 2\/50 loss 3\.2500 lr 1\.0e-4 1534 tok\/s eta \S+/);
});
