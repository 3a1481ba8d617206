/** Strict UTF-8: invalid bytes are a `file:line` error, never U+FFFD; the validator agrees with TextDecoder. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeUtf8Strict, firstInvalidUtf8, readTextFileStrict } from '../../src/io/text.ts';
import { UserError } from '../../src/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { tempDir } from './helpers.ts';

const fatal = new TextDecoder('utf-8', { fatal: true });
const valid = (b: Uint8Array): boolean => {
  try {
    fatal.decode(b);
    return true;
  } catch {
    return false;
  }
};

test('firstInvalidUtf8 agrees with a fatal TextDecoder on edge cases and random bytes', () => {
  const cases: number[][] = [
    [], [0x41], [0xc3, 0xa9], [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0xa0, 0x80], [0xed, 0xa0, 0x80],
    [0xed, 0x9f, 0xbf], [0xf0, 0x8f, 0xbf, 0xbf], [0xf0, 0x90, 0x80, 0x80], [0xf4, 0x8f, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80],
    [0xf5, 0x80, 0x80, 0x80], [0xff], [0x80], [0xe2, 0x82], [0x41, 0xe2, 0x82, 0xac, 0xe9],
  ];
  for (const c of cases) {
    const b = new Uint8Array(c);
    assert.equal(firstInvalidUtf8(b) === -1, valid(b), `[${c.map((x) => x.toString(16))}]`);
  }
  const rng = new Rng(5);
  for (let n = 0; n < 3000; n++) {
    // Mostly valid text with a few random bytes mixed in.
    const text = Buffer.from(`aé€😀${n}`.repeat(1 + (n % 3)));
    const b = new Uint8Array(text);
    for (let k = rng.nextU32() % 3; k > 0; k--) b[rng.nextU32() % b.length] = rng.nextU32() & 0xff;
    const at = firstInvalidUtf8(b);
    assert.equal(at === -1, valid(b), `case ${n}`);
    if (at >= 0) assert.ok(valid(b.subarray(0, at)), 'everything before the reported byte decodes');
  }
});

test('decodeUtf8Strict names the line and column of the first invalid byte; a BOM is dropped', () => {
  assert.equal(decodeUtf8Strict(Buffer.from('\ufeffhé\n'), 'f'), 'hé\n');
  assert.throws(
    () => decodeUtf8Strict(Buffer.concat([Buffer.from('ok\nline two \n caf'), Buffer.from([0xe9]), Buffer.from('\n')]), 'data.txt'),
    (e: unknown) => e instanceof UserError && e.message === 'data.txt:3: invalid UTF-8 (byte 0xe9 at column 5); save the file as UTF-8',
  );
});

test('readTextFileStrict: unreadable file and invalid UTF-8 are one-line UserErrors', () => {
  const { dir, cleanup } = tempDir();
  try {
    assert.throws(() => readTextFileStrict(join(dir, 'nope.yaml')), /nope\.yaml: cannot read \(ENOENT\)$/);
    const f = join(dir, 'latin1.yaml');
    writeFileSync(f, Buffer.from('steps: 1\nname: caf\xe9\n', 'latin1'));
    assert.throws(() => readTextFileStrict(f), new RegExp(`^UserError: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: invalid UTF-8 \\(byte 0xe9 at column 10\\)`));
  } finally {
    cleanup();
  }
});
