/** Backend initialisation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backendInfo, describeBackend, initBackend, tf } from '../../src/backend/tf.ts';

await initBackend({ announce: false });

test('initBackend is idempotent and runs on wasm', async () => {
  const again = await initBackend();
  assert.equal(again, backendInfo());
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(describeBackend(again), /^(OpenBLAS, \d+ threads?|pure wasm \(.+\))$/);
});
