/**
 * The backend state (src/backend/state.ts) is the one record of what is active: it agrees
 * with backendInfo() and blasActive() on each matmul path, and switching paths updates it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backendInfo, initBackend, setMatmulPath } from '../../src/backend/tf.ts';
import { blasActive, loadBlasAddon } from '../../src/backend/blas.ts';
import { state } from '../../src/backend/state.ts';

const initial = await initBackend({ announce: false });
const defaultMatmul = (process.env.MOR_MATMUL ?? 'auto').toLowerCase() as 'auto';

/** The state's fields that say which path is active match the info of that path. */
function assertAgrees(): void {
  const info = backendInfo();
  assert.equal(state.info, info);
  assert.equal(state.wasmFixesInstalled, true);
  assert.equal(blasActive(), state.blas !== undefined);
  assert.equal(info.matmulPath === 'wasm+blas', state.blas !== undefined);
  if (state.blas) {
    assert.equal(state.blas.threads, info.threads);
    assert.equal(state.blas.config, info.blasConfig);
    assert.equal(state.rankKernels, true, 'the rank kernels come with BLAS');
  }
}

test('after initialisation the state records the path that initBackend reported', () => {
  assert.equal(state.info, initial);
  assert.equal(state.init?.matmul, defaultMatmul);
  assertAgrees();
});

test('setMatmulPath updates the state; the rank kernels stay registered', async () => {
  const rankBefore = state.rankKernels;
  await setMatmulPath('wasm');
  assertAgrees();
  assert.equal(state.blas, undefined);
  assert.equal(state.init?.matmul, 'wasm');
  assert.equal(state.init?.by, 'set by setMatmulPath');
  assert.equal(state.rankKernels, rankBefore);
  if (loadBlasAddon()) {
    await setMatmulPath('blas');
    assertAgrees();
    assert.ok(state.blas);
  }
  await setMatmulPath(defaultMatmul);
  assertAgrees();
  assert.equal(state.init?.matmul, defaultMatmul);
});
