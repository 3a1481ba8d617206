import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handleInterrupts, signalExitCode } from '../../src/train/interrupt.ts';

test('first interrupt aborts and tells once; second exits with 130; dispose removes the handlers', () => {
  const told: string[] = [];
  const exits: number[] = [];
  const before = process.listenerCount('SIGINT');
  const h = handleInterrupts({ onFirst: (s) => told.push(s), exit: (c) => exits.push(c), signals: ['SIGINT'] });
  assert.equal(process.listenerCount('SIGINT'), before + 1);
  assert.equal(h.signal.aborted, false);
  process.emit('SIGINT', 'SIGINT');
  assert.equal(h.signal.aborted, true);
  assert.deepEqual(told, ['SIGINT']);
  assert.deepEqual(exits, []);
  process.emit('SIGINT', 'SIGINT');
  assert.deepEqual(exits, [130]);
  assert.equal(h.received, 'SIGINT');
  h.dispose();
  assert.equal(process.listenerCount('SIGINT'), before);
});

test('SIGTERM: the first aborts and is remembered, the second exits 143; signalExitCode is 128 + the number', () => {
  const exits: number[] = [];
  const h = handleInterrupts({ exit: (c) => exits.push(c), signals: ['SIGTERM'] });
  assert.equal(h.received, undefined);
  process.emit('SIGTERM', 'SIGTERM');
  assert.equal(h.signal.aborted, true);
  assert.equal(h.received, 'SIGTERM');
  process.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(exits, [143]);
  h.dispose();
  assert.deepEqual([signalExitCode('SIGINT'), signalExitCode('SIGTERM'), signalExitCode('SIGHUP')], [130, 143, 129]);
});
