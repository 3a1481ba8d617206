/**
 * Backend set-up on first use: no initBackend call needed, explicit options still honoured,
 * conflicting options rejected, and no Emscripten glue printed when a script fails early.
 * The order of the tests matters: the first one runs before anything initialises the backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { backendInfo, initBackend, setMatmulPath, tf } from '../../src/backend/tf.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { loadModel } from '../../src/models/load.ts';
import { isUserError } from '../../src/errors.ts';

const baseDir = fileURLToPath(new URL('../../models/base', import.meta.url));
const listenerCounts = () => [process.listeners('uncaughtException').length, process.listeners('unhandledRejection').length];
/** Taken in the first test: the test runner adds its own handlers once tests start. */
let countsBefore: number[] = [];
/** What the first, option-less initialisation picks (CI also runs this file with MOR_MATMUL=wasm). */
const defaultMatmul = (process.env.MOR_MATMUL ?? 'auto').toLowerCase();
const otherMatmul = defaultMatmul === 'wasm' ? 'auto' : 'wasm';

test('a synchronous tensor entry before any initialisation: one-line UserError naming the fix', () => {
  assert.equal(tf.engine().backendName, undefined);
  countsBefore = listenerCounts();
  assert.throws(
    () => createRandomModel(makeConfig({ vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2 }), 0),
    (e: unknown) => isUserError(e) && /^createRandomModel creates tensors .*await initBackend\(\) first/.test(e.message) && !e.message.includes('\n'),
  );
});

test('loadModel initialises the backend on first use', async () => {
  const model = await loadModel(baseDir);
  try {
    assert.equal(tf.getBackend(), 'wasm');
    const info = backendInfo();
    assert.equal(info.backend, 'wasm');
    if (defaultMatmul === 'wasm') assert.equal(info.matmulPath, 'wasm');
    assert.equal(await initBackend(), info, 'a later option-less call returns the same info');
  } finally {
    model.dispose();
  }
});

test('the Emscripten process handlers are removed after initialisation', () => {
  assert.deepEqual(listenerCounts(), countsBefore);
});

test('initBackend: the same options are a no-op, different ones a UserError', async () => {
  const info = backendInfo();
  assert.equal(await initBackend({ matmul: defaultMatmul as 'auto' }), info);
  assert.equal(await initBackend({ announce: true }), info, 'announce only applies to the initialising call');
  await assert.rejects(initBackend({ matmul: otherMatmul as 'auto' }), (e: unknown) => isUserError(e)
    && e.message === `initBackend({ matmul: '${otherMatmul}' }): the backend is already initialised with matmul '${defaultMatmul}' (${process.env.MOR_MATMUL ? 'from MOR_MATMUL' : 'the default'}); pass the same options, or switch with setMatmulPath()`);
  await assert.rejects(initBackend({ wasmPaths: 'https://example.org/wasm/' }), (e: unknown) => isUserError(e)
    && e.message === 'initBackend({ wasmPaths }): the backend is already initialised with other wasmPaths');
  await assert.rejects(initBackend({ wasmThreads: 2 }), (e: unknown) => isUserError(e)
    && e.message === 'initBackend({ wasmThreads: 2 }): the backend is already initialised with the default wasm threads');
  assert.equal(backendInfo(), info, 'a rejected call changes nothing');
  assert.equal(info.wasmThreads, 1, 'tfjs-wasm runs single-threaded in Node');
});

test('after setMatmulPath, initBackend checks against the path it set', async () => {
  const switched = await setMatmulPath('wasm');
  assert.equal(switched.matmulPath, 'wasm');
  assert.equal(await initBackend({ matmul: 'wasm' }), switched);
  assert.equal(await initBackend(), switched);
  await assert.rejects(initBackend({ matmul: 'auto' }), /already initialised with matmul 'wasm' \(set by setMatmulPath\)/);
  await setMatmulPath(defaultMatmul as 'auto');
});

test('a script that fails early prints its error, not the wasm glue', () => {
  const script = fileURLToPath(new URL('../fixtures/backend/earlyFailure.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', env: { ...process.env, MOR_QUIET: '1' }, timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /UserError: model directory not found: \/nonexistent-model-dir\n/);
  assert.doesNotMatch(r.stderr, /WasmBackendModule|readyPromiseResolve/);
  assert.ok(r.stderr.length < 2000, `stderr is ${r.stderr.length} characters`);
});
