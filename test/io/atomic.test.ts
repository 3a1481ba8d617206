/** Atomic writes: content lands whole, replaces the old file, and failures change nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeChunksAtomicSync, writeFileAtomic, writeFileAtomicSync } from '../../src/io/atomic.ts';
import { UserError } from '../../src/errors.ts';
import { tempDir } from './helpers.ts';

test('writeFileAtomic writes strings as UTF-8 and bytes as given, replacing the old file', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'a.json');
    await writeFileAtomic(p, '{"é": 1}');
    assert.deepEqual(readFileSync(p), Buffer.from([0x7b, 0x22, 0xc3, 0xa9, 0x22, 0x3a, 0x20, 0x31, 0x7d]));
    const bytes = new Uint8Array([0, 255, 7]);
    // Not awaited on purpose: the write is complete when the call returns.
    void writeFileAtomic(p, bytes.subarray(1));
    assert.deepEqual([...readFileSync(p)], [255, 7]);
    writeFileAtomicSync(p, 'x');
    assert.equal(readFileSync(p, 'utf8'), 'x');
    writeChunksAtomicSync(p, [new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array([3])]);
    assert.deepEqual([...readFileSync(p)], [1, 2, 3]);
    assert.deepEqual(readdirSync(dir), ['a.json'], 'no temporary files left');
  } finally {
    cleanup();
  }
});

test('a failing write leaves the old content and removes its temporary file', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'ckpt.bin');
    writeFileSync(p, 'old');
    function* failing(): Generator<Uint8Array> {
      yield new Uint8Array([1, 2, 3]);
      throw new Error('producer failed mid-write');
    }
    assert.throws(() => writeChunksAtomicSync(p, failing()), /producer failed mid-write/);
    assert.equal(readFileSync(p, 'utf8'), 'old');
    assert.deepEqual(readdirSync(dir), ['ckpt.bin']);
    // The target is a directory: the rename fails, nothing is left behind.
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'keep'), '1');
    await assert.rejects(writeFileAtomic(join(dir, 'sub'), 'x'), (e: unknown) => e instanceof UserError && /sub: is a directory/.test(e.message));
    assert.deepEqual(readdirSync(dir).sort(), ['ckpt.bin', 'sub']);
    // A missing directory is reported as a one-line UserError naming the path.
    await assert.rejects(
      writeFileAtomic(join(dir, 'nope', 'f.txt'), 'x'),
      (e: unknown) => e instanceof UserError && /^cannot write .*nope\/f\.txt: no such directory \(nothing was changed\)$/.test(e.message),
    );
  } finally {
    cleanup();
  }
});
