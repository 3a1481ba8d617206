/**
 * The experiment's duration bookkeeping: the wall clock is the union of the calls' spans
 * (overlapping concurrent calls count once, gaps between calls not at all); each call keeps its
 * own file, updated in place; durations print in the report's units.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatDuration, readCalls, startCall, unionMs } from '../../src/experiment/calls.ts';

test('unionMs: overlapping spans count once, gaps not at all', () => {
  assert.equal(unionMs([]), 0);
  assert.equal(unionMs([{ start: 0, end: 10 }]), 10);
  assert.equal(unionMs([{ start: 0, end: 10 }, { start: 5, end: 15 }]), 15); // two concurrent calls
  assert.equal(unionMs([{ start: 20, end: 30 }, { start: 0, end: 10 }]), 20); // a pause between calls
  assert.equal(unionMs([{ start: 0, end: 100 }, { start: 10, end: 20 }, { start: 150, end: 160 }]), 110); // nested
});

test('startCall / readCalls: one file per call, its end moved by update()', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-calls-'));
  try {
    let now = 1_000;
    const a = startCall(dir, () => now);
    now = 5_000;
    a.executed = 2;
    a.update();
    assert.deepEqual(readCalls(dir), [{ start: 1_000, end: 5_000, executed: 2 }]);
    fs.writeFileSync(path.join(dir, 'calls', 'torn.json'), '{"start": 1');
    assert.equal(readCalls(dir).length, 1, 'an unreadable file is skipped');
    assert.deepEqual(readCalls(path.join(dir, 'none')), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('formatDuration', () => {
  assert.equal(formatDuration(12.4), '12 s');
  assert.equal(formatDuration(200), '3 min 20 s');
  assert.equal(formatDuration(7500), '2 h 05 min');
  assert.equal(formatDuration(Number.NaN), '-');
});
