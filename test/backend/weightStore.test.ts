/**
 * The native weight store (src/backend/weightStore.ts): products, lookups and NaN counts on
 * memory-mapped F32/F16/BF16 weights against a plain float32 reference read by the
 * JavaScript safetensors decoder. Without the native addon (or with MOR_MATMUL=wasm) the
 * store must report itself unavailable and `weightStore: 'on'` must be a user error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import {
  MappedFile, StoredWeight, setStoreBlockFloats, storedGather, storedMatMul, weightStoreAvailable,
} from '../../src/backend/weightStore.ts';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { Rng } from '../../src/util/rng.ts';
import { naiveMatMul, relErr } from './reference.ts';

await initBackend({ announce: false });
const available = weightStoreAvailable();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-store-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const ROWS = 37;
const COLS = 23;
const rng = new Rng(7);
const values = Float32Array.from(rng.normalArray(ROWS * COLS, 0, 1));

/** Write `values` [ROWS, COLS] as `dtype`; return the file, the stored offset and the decoded float32 values. */
async function weightFile(dtype: 'F32' | 'F16' | 'BF16', data = values) {
  const file = path.join(dir, `w-${dtype}-${Math.random().toString(36).slice(2)}.safetensors`);
  await writeSafetensors(file, { pad: { dtype: 'F32', shape: [3], data: new Float32Array(3) }, w: { dtype: 'F32', shape: [ROWS, COLS], data } },
    { floatDtype: dtype });
  const f = openSafetensors(file);
  const decoded = f.read('w').data as Float32Array; // the JS decoder: the independent reference
  const offset = f.dataOffset('w');
  f.close();
  return { file, offset, decoded };
}

if (!available) {
  test('without the native addon and BLAS kernel the store is unavailable', () => {
    assert.equal(weightStoreAvailable(), false);
  });
} else {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    test(`stored ${dtype} weight: x Wᵀ, x W and row lookup equal the float32 reference`, async () => {
      const { file, offset, decoded } = await weightFile(dtype);
      const mapped = new MappedFile(file);
      const w = new StoredWeight(mapped, offset, dtype, [ROWS, COLS]);
      assert.deepEqual(Array.from(w.dataSync()), Array.from(decoded));
      const ref = tf.tensor2d(decoded, [ROWS, COLS]);
      const n0 = tf.memory().numTensors;
      // m <= 8 rows of x take the few-row path (W converted on the fly), more rows the (blocked) sgemm.
      for (const [m, block] of [[1, 0], [3, 0], [6, 0], [9, 0], [9, COLS * 5]]) { // block: whole matrix, or 5 rows (last partial)
        setStoreBlockFloats(block);
        const x = tf.tensor2d(rng.normalArray(m * COLS, 0, 1), [m, COLS]);
        const dy = tf.tensor2d(rng.normalArray(m * ROWS, 0, 1), [m, ROWS]);
        const y = storedMatMul(x, w, true);
        const dx = storedMatMul(dy, w, false);
        assert.deepEqual(y.shape, [m, ROWS]);
        assert.deepEqual(dx.shape, [m, COLS]);
        const [xs, dys] = [x.dataSync() as Float32Array, dy.dataSync() as Float32Array];
        const what = `m ${m}, block ${block}`;
        assert.ok(relErr(y.dataSync(), naiveMatMul(xs, m, COLS, decoded, ROWS, COLS, false, true)) < 1e-5, `x Wᵀ (${what})`);
        assert.ok(relErr(dx.dataSync(), naiveMatMul(dys, m, ROWS, decoded, ROWS, COLS, false, false)) < 1e-5, `dy W (${what})`);
        tf.dispose([x, dy, y, dx]);
      }
      setStoreBlockFloats(0);
      // The converted matrix is kept for the next product with the same weight (the chunked loss's
      // head): a repeat gives the same values, also after another weight used the buffer.
      const x9 = tf.tensor2d(rng.normalArray(9 * COLS, 0, 1), [9, COLS]);
      const first = storedMatMul(x9, w, true);
      const again = storedMatMul(x9, w, true);
      const other = await weightFile(dtype, values.map((v) => -v));
      const otherMapped = new MappedFile(other.file);
      const otherW = new StoredWeight(otherMapped, other.offset, dtype, [ROWS, COLS]);
      const negated = storedMatMul(x9, otherW, true);
      const third = storedMatMul(x9, w, true);
      assert.deepEqual(Array.from(again.dataSync()), Array.from(first.dataSync()));
      assert.deepEqual(Array.from(third.dataSync()), Array.from(first.dataSync()));
      assert.deepEqual(Array.from(negated.dataSync()), Array.from(first.dataSync(), (v) => -v));
      tf.dispose([x9, first, again, negated, third]);
      otherW.dispose();
      otherMapped.release();
      const ids = tf.tensor1d([0, 36, 5, 5, 17], 'int32');
      const rows = storedGather(w, ids);
      const expected = tf.tidy(() => tf.gather(ref, ids));
      assert.deepEqual(Array.from(rows.dataSync()), Array.from(expected.dataSync()));
      tf.dispose([ids, rows, expected]);
      assert.equal(tf.memory().numTensors, n0, 'no tensor leaked');
      assert.throws(() => storedGather(w, tf.tensor1d([ROWS], 'int32')), /outside the vocabulary/);
      ref.dispose();
      w.dispose();
      mapped.release(); // the test's own hold: the file is unmapped now
      assert.throws(() => w.dataSync(), /after dispose/);
    });

    test(`stored ${dtype} weight: NaN and Inf are counted`, async () => {
      const data = values.slice();
      data[0] = NaN;
      data[10] = Infinity;
      data[ROWS * COLS - 1] = -Infinity;
      const { file, offset, decoded } = await weightFile(dtype, data);
      const expected = decoded.filter((v) => !Number.isFinite(v)).length; // the decoder's view of the file
      assert.equal(expected, 3);
      const mapped = new MappedFile(file);
      const w = new StoredWeight(mapped, offset, dtype, [ROWS, COLS]);
      assert.equal(w.countNonFinite(), expected);
      w.dispose();
      mapped.release();
    });
  }

  test('a weight large enough to split over threads: few-row product and read-back equal the reference', async () => {
    const [rows, cols] = [1031, 1100]; // > 2^20 values: the conversion and few-row loops run threaded
    const data = Float32Array.from(rng.normalArray(rows * cols, 0, 1));
    const file = path.join(dir, 'big.safetensors');
    await writeSafetensors(file, { w: { dtype: 'F32', shape: [rows, cols], data } }, { floatDtype: 'BF16' });
    const f = openSafetensors(file);
    const decoded = f.read('w').data as Float32Array;
    const mapped = new MappedFile(file);
    const w = new StoredWeight(mapped, f.dataOffset('w'), 'BF16', [rows, cols]);
    f.close();
    assert.deepEqual(w.dataSync(), decoded);
    const x = tf.tensor2d(rng.normalArray(2 * cols, 0, 1), [2, cols]);
    const y = storedMatMul(x, w, true);
    assert.ok(relErr(y.dataSync(), naiveMatMul(x.dataSync() as Float32Array, 2, cols, decoded, rows, cols, false, true)) < 1e-5);
    tf.dispose([x, y]);
    w.dispose();
    mapped.release();
  });

  test('a stored weight that would lie outside its file is refused', async () => {
    const { file, offset } = await weightFile('BF16');
    const mapped = new MappedFile(file);
    assert.throws(() => new StoredWeight(mapped, offset + 2, 'BF16', [ROWS, COLS]), /outside/);
    mapped.release();
  });
}
