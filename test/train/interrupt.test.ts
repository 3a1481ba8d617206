import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handleInterrupts } from '../../src/train/interrupt.ts';

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
  h.dispose();
  assert.equal(process.listenerCount('SIGINT'), before);
});
